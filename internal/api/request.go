package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/kubedoio/n-kudo/internal/store"
)

// Pagination bounds.
const (
	DefaultPageLimit = 50
	MaxPageLimit     = 500
)

// decodeJSON reads exactly one JSON object into dst, refusing any other
// JSON value (null included), unknown fields and trailing data. An empty body is allowed only when allowEmpty
// (dst keeps its zero value).
func decodeJSON(c *gin.Context, dst any, allowEmpty bool) error {
	if c.Request.Body == nil {
		if allowEmpty {
			return nil
		}
		return invalidJSON("request body is empty")
	}
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errBodyTooLarge
		}
		return invalidJSON("reading request body: %v", err)
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		if allowEmpty {
			return nil
		}
		return invalidJSON("request body is empty")
	}
	// Every body is an object: null would decode into a struct as "no
	// fields" and pass for an empty request.
	if trimmed[0] != '{' {
		return invalidJSON("request body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return invalidJSON("%s", describeJSONError(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return invalidJSON("request body must hold a single JSON object")
	}
	return nil
}

// describeJSONError turns a decoding error into a message fit for the
// client: it names the field, never echoes the body.
func describeJSONError(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("malformed JSON at byte %d", se.Offset)
	case errors.As(err, &te):
		if te.Field != "" {
			return fmt.Sprintf("field %q must be of type %s", te.Field, te.Type)
		}
		return fmt.Sprintf("body must be a JSON %s", te.Type)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "malformed JSON: unexpected end of input"
	default:
		// Unknown-field errors read `json: unknown field "x"`.
		return err.Error()
	}
}

// parsePage reads ?limit= and ?cursor=. The cursor is the base64url of the
// last id of the previous page, opaque to clients.
func parsePage(c *gin.Context) (store.Page, error) {
	p := store.Page{Limit: DefaultPageLimit}
	if raw, ok := c.GetQuery("limit"); ok {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > MaxPageLimit {
			return p, invalidArgument("limit must be an integer between 1 and %d", MaxPageLimit)
		}
		p.Limit = n
	}
	if raw := c.Query("cursor"); raw != "" {
		id, err := decodeCursor(raw)
		if err != nil {
			return p, invalidArgument("cursor is invalid")
		}
		p.After = id
	}
	return p, nil
}

func encodeCursor(id uuid.UUID) string {
	return base64.RawURLEncoding.EncodeToString(id[:])
}

func decodeCursor(s string) (uuid.UUID, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return uuid.Nil, fmt.Errorf("decoding cursor: %w", err)
	}
	id, err := uuid.FromBytes(b)
	if err != nil {
		return uuid.Nil, fmt.Errorf("decoding cursor: %w", err)
	}
	return id, nil
}

// listBody is the shape of every list response.
type listBody[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor"`
}

// newList converts a store page into a list body; id gives each item's id
// for the cursor. Items is never null.
func newList[S, T any](rows []S, more bool, id func(S) uuid.UUID, conv func(S) T) listBody[T] {
	out := listBody[T]{Items: make([]T, 0, len(rows))}
	for _, r := range rows {
		out.Items = append(out.Items, conv(r))
	}
	if more && len(rows) > 0 {
		out.NextCursor = encodeCursor(id(rows[len(rows)-1]))
	}
	return out
}

// uuidQuery parses an optional UUID query parameter.
func uuidQuery(c *gin.Context, name string) (uuid.UUID, error) {
	raw := c.Query(name)
	if raw == "" {
		return uuid.Nil, nil
	}
	id, err := uuid.Parse(raw)
	if err != nil || len(raw) != 36 {
		return uuid.Nil, invalidArgument("%s %q is not a valid id", name, raw)
	}
	return id, nil
}
