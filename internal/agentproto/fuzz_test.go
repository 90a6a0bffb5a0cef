package agentproto_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/agentproto"
)

// checkReencodes asserts the fuzzing invariant: a message the decoder
// accepted re-encodes (unless escaping pushed it over the frame limit),
// and the re-encoded frame decodes to the same value and the same bytes.
func checkReencodes(t *testing.T, env agentproto.Envelope, msg agentproto.Message) {
	t.Helper()
	frame, err := agentproto.Encode(env.Type, env.ID, env.Seq, env.Ack, msg)
	if errors.Is(err, agentproto.ErrTooLarge) {
		// encoding/json escapes <, > and & as \u003c…, so an accepted
		// frame near the limit may not fit once re-encoded.
		return
	}
	require.NoError(t, err, "an accepted message must re-encode")
	env2, err := agentproto.Decode(frame)
	require.NoError(t, err, "re-encoded frame: %s", frame)
	require.Equal(t, env.Type, env2.Type)
	require.Equal(t, env.ID, env2.ID)
	require.Equal(t, env.Seq, env2.Seq)
	require.Equal(t, env.Ack, env2.Ack)
	msg2, err := agentproto.DecodeMessage(env2)
	require.NoError(t, err, "re-encoded frame: %s", frame)
	frame2, err := agentproto.Encode(env2.Type, env2.ID, env2.Seq, env2.Ack, msg2)
	require.NoError(t, err)
	require.Equal(t, string(frame), string(frame2), "encoding is not stable")
	// The first decode may hold raw params with insignificant whitespace,
	// so values are compared after one normalising round trip.
	env3, err := agentproto.Decode(frame2)
	require.NoError(t, err)
	msg3, err := agentproto.DecodeMessage(env3)
	require.NoError(t, err)
	require.Equal(t, msg2, msg3)
	if !hasRawParams(msg) {
		require.Equal(t, msg, msg2)
	}
}

func hasRawParams(m agentproto.Message) bool {
	p, ok := m.(agentproto.Plan)
	if !ok {
		return false
	}
	for _, a := range p.Actions {
		if len(a.Params) > 0 {
			return true
		}
	}
	return false
}

func FuzzDecode(f *testing.F) {
	for _, tc := range validMessages(f) {
		if tc.name == "log_batch full" {
			continue // keep the corpus small; the one-line batch covers it
		}
		frame, err := agentproto.Encode(tc.msg.MessageType(), "seed-1", 3, 2, tc.msg)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(frame)
	}
	for _, s := range []string{
		``, `{}`, `null`, `[]`, `{"type":"hello"}`, `{"type":"teleport","data":{}}`,
		`{"type":"plan_ack","data":{"plan_id":"00000000-0000-0000-0000-000000000000"}}`,
		`{"type":"plan","data":{"plan_id":"01932f6e-0000-7000-8000-00000000000a","actions":[{"action_id":"01932f6e-0000-7000-8000-00000000000b","execution_id":"01932f6e-0000-7000-8000-00000000000c","type":"MicroVMStop","vm_id":"01932f6e-0000-7000-8000-00000000000d","params":{ "force" : true }}]}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		env, err := agentproto.Decode(frame)
		if err != nil {
			requireOneSentinel(t, err)
			return
		}
		// Differential check of the hand-written envelope parser: what it
		// accepts, encoding/json reads the same way.
		var ref agentproto.Envelope
		require.NoError(t, json.Unmarshal(frame, &ref))
		require.Equal(t, ref.Type, env.Type)
		require.Equal(t, ref.ID, env.ID)
		require.Equal(t, ref.Seq, env.Seq)
		require.Equal(t, ref.Ack, env.Ack)
		require.Equal(t, string(ref.Data), string(env.Data))
		msg, err := agentproto.DecodeMessage(env)
		if err != nil {
			requireOneSentinel(t, err)
			return
		}
		checkReencodes(t, env, msg)
	})
}

func FuzzDecodeData(f *testing.F) {
	typeIndex := make(map[string]uint8, len(allTypes))
	for i, typ := range allTypes {
		typeIndex[typ] = uint8(i)
	}
	for _, tc := range validMessages(f) {
		if tc.name == "log_batch full" {
			continue
		}
		body, err := json.Marshal(tc.msg)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(typeIndex[tc.msg.MessageType()], body)
	}
	f.Add(uint8(0), []byte(`{}`))
	f.Add(uint8(1), []byte(`null`))
	f.Fuzz(func(t *testing.T, typ uint8, data []byte) {
		env := agentproto.Envelope{Type: allTypes[int(typ)%len(allTypes)], Data: json.RawMessage(data)}
		msg, err := agentproto.DecodeMessage(env)
		if err != nil {
			requireOneSentinel(t, err)
			return
		}
		require.Equal(t, env.Type, msg.MessageType())
		require.NoError(t, msg.Validate())
		checkReencodes(t, env, msg)
	})
}

func requireOneSentinel(t *testing.T, err error) {
	t.Helper()
	n := 0
	for _, s := range []error{agentproto.ErrTooLarge, agentproto.ErrMalformed, agentproto.ErrUnknownType, agentproto.ErrInvalid} {
		if errors.Is(err, s) {
			n++
		}
	}
	require.Equal(t, 1, n, "error must wrap exactly one sentinel: %v", err)
}
