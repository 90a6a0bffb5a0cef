package nbtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/specfile"
)

// The Management API description is large; load it once per test binary.
var spec struct {
	once sync.Once
	doc  *openapi3.T
	err  error
}

// LoadSpec loads netbird-management.yml. It does not pass doc.Validate
// (upstream defects, see shared/specs/README.md), so the stand-in matches
// routes itself and validates bodies against the component schemas.
// The document's bounds on CreateSetupKeyRequest.expires_in are dropped:
// the real server has none (see the package doc).
func LoadSpec(t *testing.T) *openapi3.T {
	t.Helper()
	path := specfile.Path(t, "netbird-management.yml")
	spec.once.Do(func() {
		spec.doc, spec.err = openapi3.NewLoader().LoadFromFile(path)
		if spec.err == nil {
			spec.err = relaxExpiresIn(spec.doc)
		}
	})
	require.NoError(t, spec.err)
	return spec.doc
}

// relaxExpiresIn removes the 86400..31536000 bounds the document puts on
// expires_in: setupkeys_handler.go refuses only negative values.
func relaxExpiresIn(doc *openapi3.T) error {
	req := doc.Components.Schemas["CreateSetupKeyRequest"]
	if req == nil || req.Value == nil || req.Value.Properties["expires_in"] == nil {
		return fmt.Errorf("spec: CreateSetupKeyRequest.expires_in not found")
	}
	exp := req.Value.Properties["expires_in"].Value
	exp.Min, exp.Max = nil, nil
	return nil
}

// Reply is a canned answer the stand-in gives instead of its own.
type Reply struct {
	Status int
	Header map[string]string
	Body   string
}

type key struct {
	id, name, key, typ string
	revoked            bool
	autoGroups         []string
	usageLimit         int
	usedTimes          int
	ephemeral          bool
	expires            time.Time // zero: never
}

// Server is a NetBird Management API that checks every request against
// netbird-management.yml: the route and method exist, the token is sent
// as "Token <pat>", query parameters are declared, and bodies validate
// against the operation's request schema with no undeclared field. Its
// own answers are validated against the response schemas before they are
// sent, so the fixtures cannot drift from the spec either. Where the real
// server's code differs from the document it answers as the code does
// (see the package doc).
type Server struct {
	// errorf reports a request that breaks the spec (t.Errorf, or a
	// recorder in the test that checks the stand-in itself).
	errorf func(format string, args ...any)
	doc    *openapi3.T
	srv    *httptest.Server

	mu        sync.Mutex // guards the following
	token     string     // the one token the account knows; "" none
	peerRead  bool       // the token's user may read every peer
	keys      map[string]*key
	peers     []map[string]any
	groups    []map[string]any
	peerLinks map[string]string // peer id → what uses it
	inject    map[string][]Reply
	calls     []string // "METHOD template"
	bodies    map[string][]map[string]any
	nextKey   int
}

// Token is the personal access token the stand-in accepts by default. It
// is well formed as NetBird checks it (see MakeToken).
var Token = MakeToken("TokenValue0123456789abcdefXYZa")

// DeadToken is well formed but unknown to the account: NetBird answers it
// with 404, not 401.
var DeadToken = MakeToken("DeletedToken0123456789abcdefXY")

// NetBird's PAT layout as extractPATFromToken checks it: "nbp_", a
// 30-character secret and a 6-character checksum, 40 characters.
const (
	patPrefix      = "nbp_"
	patSecretLen   = 30
	patChecksumLen = 6
	base62Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)

// MakeToken builds a personal access token from a 30-character secret the
// way NetBird does: the prefix, the secret, and the CRC32 of the secret in
// base62 padded to 6 characters (base62/base62.go).
func MakeToken(secret string) string {
	if len(secret) != patSecretLen {
		panic("nbtest: a PAT secret is 30 characters")
	}
	n := crc32.ChecksumIEEE([]byte(secret))
	var sum []byte
	for ; n > 0; n /= 62 {
		sum = append([]byte{base62Alphabet[n%62]}, sum...)
	}
	for len(sum) < patChecksumLen {
		sum = append([]byte{'0'}, sum...)
	}
	return patPrefix + secret + string(sum)
}

// wellFormed is extractPATFromToken's structural check: length, prefix
// and checksum. Anything failing it is 401, never 404.
func wellFormed(tok string) bool {
	if len(tok) != len(patPrefix)+patSecretLen+patChecksumLen || !strings.HasPrefix(tok, patPrefix) {
		return false
	}
	secret := tok[len(patPrefix) : len(patPrefix)+patSecretLen]
	return MakeToken(secret) == tok
}

// New starts a stand-in on loopback with groups All, edge and site-a and
// four peers (edge-a, edge-b renamed to renamed-b, and two named dup);
// it stops when the test ends.
func New(t *testing.T) *Server {
	t.Helper()
	s := &Server{
		errorf:    t.Errorf,
		doc:       LoadSpec(t),
		token:     Token,
		peerRead:  true,
		keys:      map[string]*key{},
		peerLinks: map[string]string{},
		inject:    map[string][]Reply{},
		bodies:    map[string][]map[string]any{},
	}
	s.groups = []map[string]any{
		groupObj("grp-all", "All"),
		groupObj("grp-edge", "edge"),
		groupObj("grp-site-a", "site-a"),
	}
	s.peers = []map[string]any{
		peerObj("peer-a", "edge-a", "edge-a", "100.92.3.15", "edge-a.netbird.cloud"),
		peerObj("peer-b", "renamed-b", "edge-b", "100.92.14.7", "edge-b.netbird.cloud"),
		peerObj("peer-dup1", "dup", "dup", "100.92.20.1", "dup.netbird.cloud"),
		peerObj("peer-dup2", "dup-2", "dup", "100.92.20.2", "dup-2.netbird.cloud"),
	}
	s.srv = httptest.NewServer(s)
	t.Cleanup(s.srv.Close)
	return s
}

func groupObj(id, name string) map[string]any {
	return map[string]any{"id": id, "name": name, "peers_count": 0, "resources_count": 0, "issued": "api", "peers": []any{}, "resources": []any{}}
}

func peerObj(id, name, hostname, ip, dnsLabel string) map[string]any {
	ts := "2026-01-02T03:04:05Z"
	return map[string]any{
		"id": id, "name": name, "created_at": ts, "ip": ip, "connection_ip": "198.51.100.7", "connected": true,
		"last_seen": ts, "os": "Linux 6.8", "kernel_version": "6.8.0", "geoname_id": 2643743, "version": "0.77.1",
		"groups":      []any{map[string]any{"id": "grp-all", "name": "All", "peers_count": 4, "resources_count": 0}},
		"ssh_enabled": false, "user_id": "", "hostname": hostname, "ui_version": "", "dns_label": dnsLabel,
		"login_expiration_enabled": false, "login_expired": false, "last_login": ts,
		"inactivity_expiration_enabled": false, "approval_required": false, "country_code": "DE", "city_name": "Berlin",
		"serial_number": "", "extra_dns_labels": []any{}, "ephemeral": false, "accessible_peers_count": 3,
	}
}

// URL is the stand-in's base URL, for netbirdapi.Options.BaseURL.
func (s *Server) URL() string { return s.srv.URL }

// AddPeer adds a peer to the account. Peers joined with a setup key
// belong to no user.
func (s *Server) AddPeer(id, name, hostname, ip, dnsLabel string, connected bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := peerObj(id, name, hostname, ip, dnsLabel)
	p["connected"] = connected
	s.peers = append(s.peers, p)
}

// PeerIDs lists the ids of the account's peers.
func (s *Server) PeerIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.peers))
	for _, p := range s.peers {
		out = append(out, p["id"].(string))
	}
	return out
}

// LinkPeer makes a peer used by something NetBird will not orphan (a
// network router, an ingress port): deleting it is then 412.
func (s *Server) LinkPeer(id, what string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.peerLinks[id] = what
}

// DenyPeerRead takes peers:read from the token's user: GET /api/peers then
// lists only the user's own peers, none of the setup-key peers.
func (s *Server) DenyPeerRead() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.peerRead = false
}

// SetupKey is the stand-in's record of a minted key.
type SetupKey struct {
	ID, Name, Key string
	Revoked       bool
	AutoGroups    []string
	UsageLimit    int
	UsedTimes     int
	// Expires is zero for a key that never expires.
	Expires time.Time
}

// SetupKeys returns every key the stand-in holds, by id.
func (s *Server) SetupKeys() map[string]SetupKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]SetupKey, len(s.keys))
	for id, k := range s.keys {
		out[id] = SetupKey{ID: k.id, Name: k.name, Key: k.key, Revoked: k.revoked,
			AutoGroups: slices.Clone(k.autoGroups), UsageLimit: k.usageLimit, UsedTimes: k.usedTimes, Expires: k.expires}
	}
	return out
}

// UseKey records a peer joining with the key, as `netbird up` does.
func (s *Server) UseKey(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k, ok := s.keys[id]; ok {
		k.usedTimes++
	}
}

// ExpectToken changes the token the account knows; "" deletes it, so
// every well-formed token becomes unknown (404).
func (s *Server) ExpectToken(tok string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.token = tok
}

// Queue makes the next requests to "METHOD template" get the replies, in
// order, after the request itself was validated.
func (s *Server) Queue(route string, replies ...Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inject[route] = append(s.inject[route], replies...)
}

// Calls lists the requests received so far, as "METHOD template".
func (s *Server) Calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// Bodies lists the request bodies "METHOD template" received, in order.
func (s *Server) Bodies(route string) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.bodies[route])
}

// match finds the spec path for p; literal segments win over templated
// ones, as in any router.
func (s *Server) match(p string) (string, *openapi3.PathItem, map[string]string) {
	segs := strings.Split(strings.Trim(p, "/"), "/")
	var (
		bestTmpl   string
		bestItem   *openapi3.PathItem
		bestParams map[string]string
		bestLits   = -1
	)
	for tmpl, item := range s.doc.Paths.Map() {
		tsegs := strings.Split(strings.Trim(tmpl, "/"), "/")
		if len(tsegs) != len(segs) {
			continue
		}
		params := map[string]string{}
		lits := 0
		ok := true
		for i, ts := range tsegs {
			if strings.HasPrefix(ts, "{") && strings.HasSuffix(ts, "}") {
				if segs[i] == "" {
					ok = false
					break
				}
				params[strings.Trim(ts, "{}")] = segs[i]
				continue
			}
			if ts != segs[i] {
				ok = false
				break
			}
			lits++
		}
		if ok && lits > bestLits {
			bestTmpl, bestItem, bestParams, bestLits = tmpl, item, params, lits
		}
	}
	return bestTmpl, bestItem, bestParams
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tmpl, item, params := s.match(r.URL.EscapedPath())
	if item == nil {
		s.errorf("stand-in: %s %s is not a path of the spec", r.Method, r.URL.Path)
		writeError(w, http.StatusNotFound, "no such path")
		return
	}
	op := item.GetOperation(r.Method)
	if op == nil {
		s.errorf("stand-in: %s is not an operation of %s in the spec", r.Method, tmpl)
		writeError(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	route := r.Method + " " + tmpl
	s.mu.Lock()
	s.calls = append(s.calls, route)
	s.mu.Unlock()

	auth := r.Header.Get("Authorization")
	pat, isToken := strings.CutPrefix(auth, "Token ")
	if !isToken || pat == "" {
		s.errorf("stand-in: %s: Authorization %q is not \"Token <pat>\"", route, strings.SplitN(auth, " ", 2)[0])
	}
	s.checkQuery(route, op, r)
	body, ok := s.checkBody(route, op, r)
	if !ok {
		writeError(w, http.StatusBadRequest, "couldn't parse JSON request")
		return
	}
	if status, msg := s.authenticate(pat); status != 0 {
		writeError(w, status, msg)
		return
	}
	if s.replyCanned(w, route, body) {
		return
	}
	status, out, msg := s.handle(route, params, body, r)
	if status >= 300 {
		writeError(w, status, msg)
		return
	}
	s.respond(w, route, op, status, out)
}

// authenticate is the middleware's PAT check: malformed is 401, well
// formed but unknown 404 (auth_middleware.go, util.go).
func (s *Server) authenticate(pat string) (int, string) {
	if !wellFormed(pat) {
		return http.StatusUnauthorized, "token invalid"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.token == "" || pat != s.token {
		return http.StatusNotFound, "resource not found"
	}
	return 0, ""
}

// replyCanned sends the next queued reply of route, if any, and records
// the body.
func (s *Server) replyCanned(w http.ResponseWriter, route string, body map[string]any) bool {
	s.mu.Lock()
	var canned *Reply
	if q := s.inject[route]; len(q) > 0 {
		canned, s.inject[route] = &q[0], q[1:]
	}
	if body != nil {
		s.bodies[route] = append(s.bodies[route], body)
	}
	s.mu.Unlock()
	if canned == nil {
		return false
	}
	for k, v := range canned.Header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(canned.Status)
	_, _ = io.WriteString(w, canned.Body)
	return true
}

func (s *Server) checkQuery(route string, op *openapi3.Operation, r *http.Request) {
	for name := range r.URL.Query() {
		if p := op.Parameters.GetByInAndName("query", name); p == nil {
			s.errorf("stand-in: %s: query parameter %q is not in the spec", route, name)
		}
	}
}

// checkBody validates the request body against the operation's schema.
func (s *Server) checkBody(route string, op *openapi3.Operation, r *http.Request) (map[string]any, bool) {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		s.errorf("stand-in: %s: reading body: %v", route, err)
		return nil, false
	}
	if op.RequestBody == nil {
		if len(bytes.TrimSpace(raw)) > 0 {
			s.errorf("stand-in: %s takes no body, got %s", route, raw)
			return nil, false
		}
		return nil, true
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		s.errorf("stand-in: %s: Content-Type %q", route, ct)
	}
	media := op.RequestBody.Value.Content.Get("application/json")
	if media == nil || media.Schema == nil {
		s.errorf("spec: %s has no JSON request schema", route)
		return nil, false
	}
	schema := media.Schema.Value
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		s.errorf("stand-in: %s: body is not JSON: %v", route, err)
		return nil, false
	}
	if err := schema.VisitJSON(v); err != nil {
		s.errorf("stand-in: %s: body does not match %s: %v", route, media.Schema.Ref, err)
		return nil, false
	}
	obj, isObj := v.(map[string]any)
	if !isObj {
		s.errorf("stand-in: %s: body is not an object", route)
		return nil, false
	}
	for k := range obj {
		if _, declared := schema.Properties[k]; !declared {
			s.errorf("stand-in: %s: body field %q is not in %s", route, k, media.Schema.Ref)
			return nil, false
		}
	}
	return obj, true
}

// respond validates out against the operation's response schema and
// sends it.
func (s *Server) respond(w http.ResponseWriter, route string, op *openapi3.Operation, status int, out any) {
	// Handlers run on the server's goroutines: report with Errorf, never
	// FailNow.
	resp := op.Responses.Status(status)
	if resp == nil {
		s.errorf("spec: %s has no %d response", route, status)
	}
	data, err := json.Marshal(out)
	if err != nil {
		s.errorf("stand-in: %s: encoding answer: %v", route, err)
	}
	var media *openapi3.MediaType
	if resp != nil {
		media = resp.Value.Content.Get("application/json")
	}
	if media != nil && media.Schema != nil {
		var v any
		if err := json.Unmarshal(data, &v); err != nil {
			s.errorf("stand-in: %s: decoding own answer: %v", route, err)
		}
		if err := media.Schema.Value.VisitJSON(v); err != nil {
			s.errorf("stand-in: %s: own %d answer does not match the spec: %v", route, status, err)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Request-Id", fmt.Sprintf("req-%d", len(s.Calls())))
	w.WriteHeader(status)
	_, _ = w.Write(data)
}

// writeError is util.WriteErrorResponse: {"message","code"}.
func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"message": msg, "code": status})
}

// handle is the stand-in's behaviour per route; it returns a status, a
// 2xx body, or an error message.
func (s *Server) handle(route string, params map[string]string, body map[string]any, r *http.Request) (int, any, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch route {
	case "GET /api/groups":
		out := []map[string]any{}
		for _, g := range s.groups {
			if n := r.URL.Query().Get("name"); n == "" || g["name"] == n {
				out = append(out, g)
			}
		}
		return http.StatusOK, out, ""
	case "DELETE /api/groups/{groupId}":
		return s.deleteGroup(params["groupId"])
	case "POST /api/setup-keys":
		return s.createKey(body)
	case "GET /api/setup-keys/{keyId}", "PUT /api/setup-keys/{keyId}", "DELETE /api/setup-keys/{keyId}":
		return s.keyOp(r.Method, params["keyId"], body)
	case "GET /api/peers":
		return http.StatusOK, s.listPeers(r), ""
	case "DELETE /api/peers/{peerId}":
		return s.deletePeer(params["peerId"])
	}
	s.errorf("stand-in: %s is in the spec but the client should not call it", route)
	// Recorded above as a test failure: the client called a route it has
	// no business calling, so the stand-in refuses it loudly.
	return http.StatusNotImplemented, nil, "route outside what the nkudo client may call"
}

// validateAutoGroups is setupkey.go validateSetupKeyAutoGroups, wrapped
// as CreateSetupKey and SaveSetupKey wrap it (422).
func (s *Server) validateAutoGroups(ids []string) string {
	for _, id := range ids {
		i := slices.IndexFunc(s.groups, func(g map[string]any) bool { return g["id"] == id })
		switch {
		case i < 0:
			return "invalid auto groups: group not found: " + id
		case s.groups[i]["name"] == "All":
			return "invalid auto groups: can't add 'All' group to the setup key"
		}
	}
	return ""
}

func (s *Server) createKey(body map[string]any) (int, any, string) {
	exp := int64(body["expires_in"].(float64))
	if exp < 0 {
		return http.StatusUnprocessableEntity, nil, "expiresIn can not be in the past"
	}
	groups := stringsOf(body["auto_groups"])
	if msg := s.validateAutoGroups(groups); msg != "" {
		return http.StatusUnprocessableEntity, nil, msg
	}
	s.nextKey++
	k := &key{
		id: fmt.Sprintf("sk-%d", s.nextKey), name: body["name"].(string), typ: body["type"].(string),
		key:        fmt.Sprintf("A616097E-FCF0-48FA-9354-%012d", s.nextKey),
		autoGroups: groups, usageLimit: int(body["usage_limit"].(float64)),
	}
	if exp > 0 { // 0: never expires (types.GenerateSetupKey)
		k.expires = time.Now().UTC().Add(time.Duration(exp) * time.Second).Truncate(time.Second)
	}
	if e, ok := body["ephemeral"].(bool); ok {
		k.ephemeral = e
	}
	s.keys[k.id] = k
	return http.StatusOK, keyObj(k, true), ""
}

func (s *Server) keyOp(method, id string, body map[string]any) (int, any, string) {
	k, ok := s.keys[id]
	if !ok {
		return http.StatusNotFound, nil, "resource not found"
	}
	switch method {
	case http.MethodPut:
		groups := stringsOf(body["auto_groups"])
		if msg := s.validateAutoGroups(groups); msg != "" {
			return http.StatusUnprocessableEntity, nil, msg
		}
		revoked := body["revoked"].(bool)
		if k.revoked && !revoked {
			return http.StatusUnprocessableEntity, nil, "can't un-revoke a revoked setup key"
		}
		k.revoked, k.autoGroups = revoked, groups
	case http.MethodDelete:
		delete(s.keys, k.id)
		return http.StatusOK, map[string]any{}, ""
	}
	return http.StatusOK, keyObj(k, false), ""
}

// deleteGroup is validateDeleteGroup's setup-key rule (group.go) with the
// groups handler's 400 for a GroupLinkError.
func (s *Server) deleteGroup(id string) (int, any, string) {
	i := slices.IndexFunc(s.groups, func(g map[string]any) bool { return g["id"] == id })
	if i < 0 {
		return http.StatusNotFound, nil, "resource not found"
	}
	if s.groups[i]["name"] == "All" {
		return http.StatusUnprocessableEntity, nil, "deleting group ALL is not allowed"
	}
	for _, k := range s.keys {
		if slices.Contains(k.autoGroups, id) {
			return http.StatusBadRequest, nil, "group has been linked to setup key: " + k.name
		}
	}
	s.groups = slices.Delete(s.groups, i, i+1)
	return http.StatusOK, map[string]any{}, ""
}

// listPeers is GetPeers: the whole account with peers:read, else only the
// token user's own peers (setup-key peers have no user).
func (s *Server) listPeers(r *http.Request) []map[string]any {
	out := []map[string]any{}
	if !s.peerRead {
		return out
	}
	q := r.URL.Query()
	for _, p := range s.peers {
		if (q.Get("name") == "" || p["name"] == q.Get("name")) && (q.Get("ip") == "" || p["ip"] == q.Get("ip")) {
			out = append(out, p)
		}
	}
	return out
}

func (s *Server) deletePeer(id string) (int, any, string) {
	i := slices.IndexFunc(s.peers, func(p map[string]any) bool { return p["id"] == id })
	if i < 0 {
		return http.StatusNotFound, nil, "resource not found"
	}
	if _, linked := s.peerLinks[id]; linked {
		// validatePeerDelete's "peer is linked to …" is a
		// PreconditionFailed status, which util.go sends without its text.
		return http.StatusPreconditionFailed, nil, "precondition failed"
	}
	s.peers = slices.Delete(s.peers, i, i+1)
	return http.StatusOK, map[string]any{}, ""
}

// keyObj is setupkeys_handler.go ToResponseBody.
func keyObj(k *key, clear bool) map[string]any {
	key := k.key
	if !clear {
		key = k.key[:5] + "****"
	}
	expired := !k.expires.IsZero() && time.Now().After(k.expires)
	overused := k.usageLimit > 0 && k.usedTimes >= k.usageLimit
	state := "valid"
	switch {
	case expired:
		state = "expired"
	case k.revoked:
		state = "revoked"
	case overused:
		state = "overused"
	}
	groups := make([]any, len(k.autoGroups))
	for i, g := range k.autoGroups {
		groups[i] = g
	}
	return map[string]any{
		"id": k.id, "key": key, "name": k.name, "expires": k.expires.Format(time.RFC3339), "type": k.typ,
		"valid": state == "valid", "revoked": k.revoked, "used_times": k.usedTimes, "last_used": "0001-01-01T00:00:00Z",
		"state": state, "auto_groups": groups, "updated_at": "2026-01-02T00:00:00Z", "usage_limit": k.usageLimit,
		"ephemeral": k.ephemeral, "allow_extra_dns_labels": false,
	}
}

func stringsOf(v any) []string {
	arr, _ := v.([]any)
	out := make([]string, 0, len(arr))
	for _, x := range arr {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}
