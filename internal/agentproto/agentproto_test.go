package agentproto_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kubedoio/n-kudo/internal/agentproto"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, tc := range validMessages(t) {
		seen[tc.msg.MessageType()] = true
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			frame, err := agentproto.Encode(tc.msg.MessageType(), "m-1", 7, 3, tc.msg)
			require.NoError(t, err)
			env, err := agentproto.Decode(frame)
			require.NoError(t, err)
			require.Equal(t, tc.msg.MessageType(), env.Type)
			require.Equal(t, "m-1", env.ID)
			require.Equal(t, uint64(7), env.Seq)
			require.Equal(t, uint64(3), env.Ack)
			got, err := agentproto.DecodeMessage(env)
			require.NoError(t, err)
			require.Equal(t, tc.msg, got)
		})
	}
	// Every message type of the protocol has a round-trip case.
	for _, typ := range allTypes {
		require.True(t, seen[typ], "no round-trip case for %q", typ)
	}
}

var allTypes = []string{
	agentproto.TypeHello, agentproto.TypeHeartbeat, agentproto.TypeActionResult, agentproto.TypeLogBatch,
	agentproto.TypeCertRenew, agentproto.TypePlanAck, agentproto.TypeConsoleData,
	agentproto.TypeHelloAck, agentproto.TypePlan, agentproto.TypeResultAck, agentproto.TypeLogAck,
	agentproto.TypeCertRenewed, agentproto.TypeRevoked, agentproto.TypeConsoleStart, agentproto.TypeConsoleStop,
	agentproto.TypeError,
}

func TestEncodeOmitsZeroEnvelopeFields(t *testing.T) {
	t.Parallel()
	frame, err := agentproto.Encode(agentproto.TypePlanAck, "", 0, 0, agentproto.PlanAck{PlanID: idA})
	require.NoError(t, err)
	require.JSONEq(t, `{"type":"plan_ack","data":{"plan_id":"`+idA.String()+`"}}`, string(frame))
}

func TestDecodeDataIgnoresUnknownBodyFields(t *testing.T) {
	t.Parallel()
	env, err := agentproto.Decode([]byte(`{"type":"result_ack","data":{"action_id":"` + idB.String() + `","from_the_future":[1,2]}}`))
	require.NoError(t, err)
	got, err := agentproto.DecodeData[agentproto.ResultAck](env)
	require.NoError(t, err)
	require.Equal(t, agentproto.ResultAck{ActionID: idB}, got)
}

func TestHeartbeatIntervalIsMilliseconds(t *testing.T) {
	t.Parallel()
	env, err := agentproto.Decode(mustEncode(t, helloAck()))
	require.NoError(t, err)
	require.Contains(t, string(env.Data), `"heartbeat_interval_ms":15000`)
	ack, err := agentproto.DecodeData[agentproto.HelloAck](env)
	require.NoError(t, err)
	require.Equal(t, 15*time.Second, ack.HeartbeatInterval())
}

func mustEncode(t *testing.T, m agentproto.Message) []byte {
	t.Helper()
	frame, err := agentproto.Encode(m.MessageType(), "", 0, 0, m)
	require.NoError(t, err)
	return frame
}

func TestValidateFailures(t *testing.T) {
	t.Parallel()
	p := pems(t)
	long := func(n int) string { return strings.Repeat("x", n) }
	cases := []struct {
		name string
		msg  func() agentproto.Message
	}{
		{"hello without agent version", func() agentproto.Message { m := hello(); m.AgentVersion = ""; return m }},
		{"hello capability 0", func() agentproto.Message { m := hello(); m.CapabilityVersion = 0; return m }},
		{"hello capability with space", func() agentproto.Message { m := hello(); m.Capabilities = []string{"a b"}; return m }},
		{"hello too many capabilities", func() agentproto.Message {
			m := hello()
			m.Capabilities = make([]string, agentproto.MaxCapabilities+1)
			for i := range m.Capabilities {
				m.Capabilities[i] = "c"
			}
			return m
		}},
		{"hello without hostname", func() agentproto.Message { m := hello(); m.Facts.Hostname = ""; return m }},
		{"hello hostname too long", func() agentproto.Message { m := hello(); m.Facts.Hostname = long(254); return m }},
		{"hello invalid utf-8 kernel", func() agentproto.Message { m := hello(); m.Facts.Kernel = "6.1\xff"; return m }},
		{"hello negative cores", func() agentproto.Message { m := hello(); m.Facts.CPUCores = -1; return m }},
		{"hello disk free over total", func() agentproto.Message {
			m := hello()
			m.Facts.Disks[0].FreeBytes = m.Facts.Disks[0].TotalBytes + 1
			return m
		}},
		{"hello disk without mount", func() agentproto.Message { m := hello(); m.Facts.Disks[0].Mount = ""; return m }},
		{"hello unknown hypervisor", func() agentproto.Message { m := hello(); m.Facts.Hypervisor.Kind = "qemu"; return m }},
		{"hello sim not labelled simulated", func() agentproto.Message {
			m := hello()
			m.Facts.Hypervisor = agentproto.Hypervisor{Kind: agentproto.HypervisorSim}
			return m
		}},
		{"hello nil vm id", func() agentproto.Message { m := hello(); m.VMs[0].VMID = uuid.Nil; return m }},
		{"hello bad vm state", func() agentproto.Message { m := hello(); m.VMs[0].State = "exploded"; return m }},
		{"hello bad netbird state", func() agentproto.Message { m := hello(); m.NetBird.State = "up"; return m }},
		{"hello bad netbird ip", func() agentproto.Message { m := hello(); m.NetBird.IP = "100.64.0.300"; return m }},
		{"hello peers over total", func() agentproto.Message { m := hello(); m.NetBird.PeersConnected = 5; return m }},
		{"hello nil pending result", func() agentproto.Message { m := hello(); m.PendingResults = []uuid.UUID{uuid.Nil}; return m }},
		{"heartbeat without time", func() agentproto.Message { m := heartbeat(); m.At = time.Time{}; return m }},
		{"heartbeat year 10000", func() agentproto.Message {
			m := heartbeat()
			m.At = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
			return m
		}},
		{"heartbeat cpu over 100", func() agentproto.Message { m := heartbeat(); m.Usage.CPUPercent = 100.5; return m }},
		{"heartbeat negative memory", func() agentproto.Message { m := heartbeat(); m.Usage.MemoryUsedBytes = -1; return m }},
		{"heartbeat bad changed facts", func() agentproto.Message { m := heartbeat(); m.Facts.AgentVersion = ""; return m }},
		{"heartbeat too many vms", func() agentproto.Message {
			m := heartbeat()
			m.VMs = make([]agentproto.VMStatus, agentproto.MaxVMsPerHost+1)
			for i := range m.VMs {
				m.VMs[i] = agentproto.VMStatus{VMID: idA, State: agentproto.VMRunning}
			}
			return m
		}},
		{"action_result nil plan id", func() agentproto.Message { m := actionResult(); m.PlanID = uuid.Nil; return m }},
		{"action_result nil action id", func() agentproto.Message { m := actionResult(); m.ActionID = uuid.Nil; return m }},
		{"action_result nil execution id", func() agentproto.Message { m := actionResult(); m.ExecutionID = uuid.Nil; return m }},
		{"action_result bad status", func() agentproto.Message { m := actionResult(); m.Status = "done"; return m }},
		{"action_result pending status", func() agentproto.Message { m := actionResult(); m.Status = "pending"; return m }},
		{"action_result failed without error", func() agentproto.Message { m := actionResult(); m.Error = ""; return m }},
		{"action_result succeeded with error", func() agentproto.Message {
			m := actionResult()
			m.Status = agentproto.ResultSucceeded
			return m
		}},
		{"action_result bad vm state", func() agentproto.Message { m := actionResult(); m.VMState = "gone"; return m }},
		{"action_result without time", func() agentproto.Message { m := actionResult(); m.At = time.Time{}; return m }},
		{"log_batch nil execution", func() agentproto.Message { m := logBatch(2); m.ExecutionID = uuid.Nil; return m }},
		{"log_batch empty", func() agentproto.Message { m := logBatch(0); return m }},
		{"log_batch too many lines", func() agentproto.Message { return logBatch(agentproto.MaxLogBatchLines + 1) }},
		{"log_batch seq 0", func() agentproto.Message { m := logBatch(2); m.Lines[0].Seq = 0; return m }},
		{"log_batch negative seq", func() agentproto.Message { m := logBatch(2); m.Lines[0].Seq = -4; return m }},
		{"log_batch repeated seq", func() agentproto.Message { m := logBatch(3); m.Lines[2].Seq = 2; return m }},
		{"log_batch decreasing seq", func() agentproto.Message { m := logBatch(3); m.Lines[1].Seq = 9; return m }},
		{"log_batch oversized line", func() agentproto.Message {
			m := logBatch(2)
			m.Lines[1].Message = long(agentproto.MaxLogLineBytes + 1)
			return m
		}},
		{"log_batch invalid utf-8 line", func() agentproto.Message { m := logBatch(2); m.Lines[1].Message = "\xc3("; return m }},
		{"log_batch without time", func() agentproto.Message { m := logBatch(2); m.Lines[1].At = time.Time{}; return m }},
		{"log_batch empty stream", func() agentproto.Message { m := logBatch(2); m.Lines[1].Stream = ""; return m }},
		{"log_batch uppercase stream", func() agentproto.Message { m := logBatch(2); m.Lines[1].Stream = "STDOUT"; return m }},
		{"cert_renew empty", func() agentproto.Message { return agentproto.CertRenew{} }},
		{"cert_renew not pem", func() agentproto.Message { return agentproto.CertRenew{CSR: "hello"} }},
		{"cert_renew certificate instead of csr", func() agentproto.Message { return agentproto.CertRenew{CSR: p.cert} }},
		{"cert_renew garbage der", func() agentproto.Message {
			return agentproto.CertRenew{CSR: "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"}
		}},
		{"cert_renew trailing data", func() agentproto.Message { return agentproto.CertRenew{CSR: p.csr + "junk"} }},
		{"plan_ack nil", func() agentproto.Message { return agentproto.PlanAck{} }},
		{"console_data nil stream", func() agentproto.Message { return agentproto.ConsoleData{VMID: idA, Data: []byte("x")} }},
		{"console_data empty", func() agentproto.Message { return agentproto.ConsoleData{VMID: idA, StreamID: idB} }},
		{"console_data marker with data", func() agentproto.Message {
			return agentproto.ConsoleData{VMID: idA, StreamID: idB, Data: []byte("x"), SnapshotDone: true}
		}},
		{"console_data too big", func() agentproto.Message {
			return agentproto.ConsoleData{VMID: idA, StreamID: idB, Data: make([]byte, agentproto.MaxConsoleChunkBytes+1)}
		}},
		{"hello_ack nil agent", func() agentproto.Message { m := helloAck(); m.AgentID = uuid.Nil; return m }},
		{"hello_ack capability 0", func() agentproto.Message { m := helloAck(); m.CapabilityVersion = 0; return m }},
		{"hello_ack interval too short", func() agentproto.Message { m := helloAck(); m.HeartbeatIntervalMS = 999; return m }},
		{"hello_ack interval too long", func() agentproto.Message {
			m := helloAck()
			m.HeartbeatIntervalMS = agentproto.MaxHeartbeatIntervalMS + 1
			return m
		}},
		{"hello_ack without server time", func() agentproto.Message { m := helloAck(); m.ServerTime = time.Time{}; return m }},
		{"hello_ack zero limit", func() agentproto.Message { m := helloAck(); m.Limits.MaxLogBatchLines = 0; return m }},
		{"hello_ack negative limit", func() agentproto.Message {
			m := helloAck()
			m.Limits.MaxActionsPerPlan = -1
			return m
		}},
		{"plan nil id", func() agentproto.Message { m := plan(); m.PlanID = uuid.Nil; return m }},
		{"plan empty", func() agentproto.Message { m := plan(); m.Actions = nil; return m }},
		{"plan too many actions", func() agentproto.Message {
			m := plan()
			m.Actions = make([]agentproto.Action, agentproto.MaxActionsPerPlan+1)
			for i := range m.Actions {
				m.Actions[i] = agentproto.Action{ActionID: uuid.New(), ExecutionID: idC, Type: agentproto.ActionMicroVMStop, VMID: idD}
			}
			return m
		}},
		{"plan unknown action type", func() agentproto.Message { m := plan(); m.Actions[1].Type = "MicroVMExplode"; return m }},
		{"plan lowercase action type", func() agentproto.Message { m := plan(); m.Actions[1].Type = "microvmstart"; return m }},
		{"plan nil action id", func() agentproto.Message { m := plan(); m.Actions[0].ActionID = uuid.Nil; return m }},
		{"plan nil execution id", func() agentproto.Message { m := plan(); m.Actions[0].ExecutionID = uuid.Nil; return m }},
		{"plan nil vm id", func() agentproto.Message { m := plan(); m.Actions[0].VMID = uuid.Nil; return m }},
		{"plan repeated action id", func() agentproto.Message { m := plan(); m.Actions[1].ActionID = m.Actions[0].ActionID; return m }},
		{"plan params array", func() agentproto.Message { m := plan(); m.Actions[0].Params = json.RawMessage(`[1]`); return m }},
		{"plan params too big", func() agentproto.Message {
			m := plan()
			m.Actions[0].Params = json.RawMessage(`{"x":"` + long(agentproto.MaxActionParamsBytes) + `"}`)
			return m
		}},
		{"result_ack nil", func() agentproto.Message { return agentproto.ResultAck{} }},
		{"log_ack nil execution", func() agentproto.Message { return agentproto.LogAck{Seq: 1} }},
		{"log_ack seq 0", func() agentproto.Message { return agentproto.LogAck{ExecutionID: idC} }},
		{"cert_renewed empty certificate", func() agentproto.Message {
			return agentproto.CertRenewed{CA: p.cert, ExpiresAt: at}
		}},
		{"cert_renewed csr as ca", func() agentproto.Message {
			return agentproto.CertRenewed{Certificate: p.cert, CA: p.csr, ExpiresAt: at}
		}},
		{"cert_renewed no expiry", func() agentproto.Message {
			return agentproto.CertRenewed{Certificate: p.cert, CA: p.cert}
		}},
		{"revoked without reason", func() agentproto.Message { return agentproto.Revoked{} }},
		{"console_start nil vm", func() agentproto.Message { return agentproto.ConsoleStart{StreamID: idB} }},
		{"console_stop nil stream", func() agentproto.Message { return agentproto.ConsoleStop{VMID: idA} }},
		{"error without code", func() agentproto.Message { return agentproto.Error{Message: "x"} }},
		{"error message too long", func() agentproto.Message {
			return agentproto.Error{Code: "x", Message: long(agentproto.MaxErrorBytes + 1)}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			msg := tc.msg()
			err := msg.Validate()
			require.ErrorIs(t, err, agentproto.ErrInvalid)
			// The sender refuses to encode it, too.
			_, err = agentproto.Encode(msg.MessageType(), "", 0, 0, msg)
			require.ErrorIs(t, err, agentproto.ErrInvalid)
		})
	}
}

func TestLimitsClamp(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		in   agentproto.Limits
		want agentproto.Limits
	}{
		{"defaults", agentproto.DefaultLimits(), agentproto.DefaultLimits()},
		{"lower kept", agentproto.Limits{MaxFrameBytes: 4096, MaxLogBatchLines: 10, MaxLogLineBytes: 100, MaxActionsPerPlan: 1},
			agentproto.Limits{MaxFrameBytes: 4096, MaxLogBatchLines: 10, MaxLogLineBytes: 100, MaxActionsPerPlan: 1}},
		{"higher lowered", agentproto.Limits{MaxFrameBytes: 8 << 20, MaxLogBatchLines: 5000, MaxLogLineBytes: 1 << 20, MaxActionsPerPlan: 1000},
			agentproto.DefaultLimits()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.NoError(t, tc.in.Validate())
			require.Equal(t, tc.want, tc.in.Clamp())
		})
	}
}

func TestValidateRejectsForgedBodies(t *testing.T) {
	t.Parallel()
	// Bodies a buggy or hostile peer could send: they decode, and the
	// receiver must still refuse them.
	cases := []struct {
		name, frame string
		want        error
	}{
		{"nil uuid", `{"type":"plan_ack","data":{"plan_id":"00000000-0000-0000-0000-000000000000"}}`, agentproto.ErrInvalid},
		{"missing uuid", `{"type":"plan_ack","data":{}}`, agentproto.ErrInvalid},
		{"bad uuid", `{"type":"plan_ack","data":{"plan_id":"not-a-uuid"}}`, agentproto.ErrMalformed},
		{"uuid as number", `{"type":"result_ack","data":{"action_id":42}}`, agentproto.ErrMalformed},
		{"seq as string", `{"type":"log_ack","data":{"execution_id":"` + idC.String() + `","seq":"1"}}`, agentproto.ErrMalformed},
		{"bad time", `{"type":"heartbeat","data":{"at":"yesterday","usage":{},"netbird":{"state":"disabled"}}}`, agentproto.ErrMalformed},
		{"data is array", `{"type":"plan_ack","data":[]}`, agentproto.ErrMalformed},
		{"data is null", `{"type":"plan_ack","data":null}`, agentproto.ErrMalformed},
		{"data missing", `{"type":"plan_ack"}`, agentproto.ErrMalformed},
		{"log seq not increasing", `{"type":"log_batch","data":{"execution_id":"` + idC.String() + `","lines":[` +
			`{"seq":2,"at":"2026-11-27T00:00:00Z","stream":"stdout","message":"a"},` +
			`{"seq":2,"at":"2026-11-27T00:00:00Z","stream":"stdout","message":"b"}]}}`, agentproto.ErrInvalid},
		{"unknown action type", `{"type":"plan","data":{"plan_id":"` + idA.String() + `","actions":[{"action_id":"` + idB.String() +
			`","execution_id":"` + idC.String() + `","type":"Format","vm_id":"` + idD.String() + `"}]}}`, agentproto.ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env, err := agentproto.Decode([]byte(tc.frame))
			require.NoError(t, err)
			_, err = agentproto.DecodeMessage(env)
			require.ErrorIs(t, err, tc.want)
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	t.Parallel()
	valid := string(mustEncode(t, agentproto.PlanAck{PlanID: idA}))
	huge := `{"type":"error","data":{"code":"x","message":"` + strings.Repeat("a", agentproto.MaxFrameBytes) + `"}}`
	cases := []struct {
		name, frame string
		want        error
	}{
		{"oversized", huge, agentproto.ErrTooLarge},
		{"empty", ``, agentproto.ErrMalformed},
		{"whitespace", " \n", agentproto.ErrMalformed},
		{"truncated", valid[:len(valid)-5], agentproto.ErrMalformed},
		{"truncated by one", valid[:len(valid)-1], agentproto.ErrMalformed},
		{"array", `[{"type":"plan_ack"}]`, agentproto.ErrMalformed},
		{"string", `"plan_ack"`, agentproto.ErrMalformed},
		{"null", `null`, agentproto.ErrMalformed},
		{"number", `42`, agentproto.ErrMalformed},
		{"two objects", valid + valid, agentproto.ErrMalformed},
		{"trailing garbage", valid + "x", agentproto.ErrMalformed},
		{"missing type", `{"data":{}}`, agentproto.ErrMalformed},
		{"empty type", `{"type":"","data":{}}`, agentproto.ErrMalformed},
		{"type not a string", `{"type":1,"data":{}}`, agentproto.ErrMalformed},
		{"unknown envelope field", `{"type":"plan_ack","priority":1,"data":{}}`, agentproto.ErrMalformed},
		{"negative seq", `{"type":"plan_ack","seq":-1,"data":{}}`, agentproto.ErrMalformed},
		{"fractional ack", `{"type":"plan_ack","ack":1.5,"data":{}}`, agentproto.ErrMalformed},
		{"id with space", `{"type":"plan_ack","id":"a b","data":{}}`, agentproto.ErrMalformed},
		{"id too long", `{"type":"plan_ack","id":"` + strings.Repeat("i", agentproto.MaxNameBytes+1) + `","data":{}}`, agentproto.ErrMalformed},
		{"invalid json", `{"type":"plan_ack",}`, agentproto.ErrMalformed},
		{"seq overflows", `{"type":"plan_ack","seq":18446744073709551616,"data":{}}`, agentproto.ErrMalformed},
		{"seq with exponent", `{"type":"plan_ack","seq":1e2,"data":{}}`, agentproto.ErrMalformed},
		{"seq as string", `{"type":"plan_ack","seq":"1","data":{}}`, agentproto.ErrMalformed},
		{"seq as bool", `{"type":"plan_ack","seq":true,"data":{}}`, agentproto.ErrMalformed},
		{"id as number", `{"type":"plan_ack","id":7,"data":{}}`, agentproto.ErrMalformed},
		{"type as object", `{"type":{"a":"b"},"data":{}}`, agentproto.ErrMalformed},
		{"key in other case", `{"TYPE":"plan_ack","data":{}}`, agentproto.ErrMalformed},
		{"data key in other case", `{"type":"plan_ack","Data":{}}`, agentproto.ErrMalformed},
		{"repeated type", `{"type":"plan_ack","type":"hello","data":{}}`, agentproto.ErrMalformed},
		{"repeated data", `{"type":"plan_ack","data":{},"data":{}}`, agentproto.ErrMalformed},
		{"closed with bracket", `{"type":"plan_ack"]`, agentproto.ErrMalformed},
		{"unterminated", `{"type":"plan_ack"`, agentproto.ErrMalformed},
		{"leading garbage", `x{"type":"plan_ack"}`, agentproto.ErrMalformed},
		{"unknown type", `{"type":"teleport","data":{}}`, agentproto.ErrUnknownType},
		{"type with other case", `{"type":"Hello","data":{}}`, agentproto.ErrUnknownType},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env, err := agentproto.Decode([]byte(tc.frame))
			require.ErrorIs(t, err, tc.want)
			for _, other := range []error{agentproto.ErrTooLarge, agentproto.ErrMalformed, agentproto.ErrUnknownType, agentproto.ErrInvalid} {
				if other != tc.want {
					require.NotErrorIs(t, err, other, "errors must wrap exactly one sentinel")
				}
			}
			require.Equal(t, agentproto.Envelope{}, env)
		})
	}
}

func TestDecodeAcceptsNullAndWhitespace(t *testing.T) {
	t.Parallel()
	env, err := agentproto.Decode([]byte(" {\n\"data\" : {\"plan_id\":\"" + idA.String() + "\"}, \"id\": null, \"type\" : \"plan_ack\", \"seq\": 4 }\n"))
	require.NoError(t, err)
	require.Equal(t, agentproto.TypePlanAck, env.Type)
	require.Equal(t, "", env.ID)
	require.Equal(t, uint64(4), env.Seq)
	got, err := agentproto.DecodeData[agentproto.PlanAck](env)
	require.NoError(t, err)
	require.Equal(t, agentproto.PlanAck{PlanID: idA}, got)
}

func TestDecodeEnvelopeEdgeCases(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		frame string
		want  agentproto.Envelope
	}{
		{"max seq", `{"type":"plan_ack","seq":18446744073709551615}`,
			agentproto.Envelope{Type: "plan_ack", Seq: 1<<64 - 1}},
		{"escaped key and value", `{"\u0074ype":"plan\u005fack","id":"a\/b"}`,
			agentproto.Envelope{Type: "plan_ack", ID: "a/b"}},
		{"nulls", `{"type":"plan_ack","id":null,"seq":null,"ack":null}`,
			agentproto.Envelope{Type: "plan_ack"}},
		{"nested data with braces in strings", `{"data":{"a":["}",{"b":"]\""}]},"type":"error"}`,
			agentproto.Envelope{Type: "error", Data: json.RawMessage(`{"a":["}",{"b":"]\""}]}`)}},
		{"data is a number", `{"type":"error","data":12}`,
			agentproto.Envelope{Type: "error", Data: json.RawMessage(`12`)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env, err := agentproto.Decode([]byte(tc.frame))
			require.NoError(t, err)
			require.Equal(t, tc.want, env)
		})
	}
}

func TestDecodeDataTypeMismatch(t *testing.T) {
	t.Parallel()
	env, err := agentproto.Decode(mustEncode(t, agentproto.PlanAck{PlanID: idA}))
	require.NoError(t, err)
	_, err = agentproto.DecodeData[agentproto.ResultAck](env)
	require.ErrorIs(t, err, agentproto.ErrMalformed)
	_, err = agentproto.DecodeMessage(agentproto.Envelope{Type: "teleport", Data: json.RawMessage(`{}`)})
	require.ErrorIs(t, err, agentproto.ErrUnknownType)
}

func TestEncodeRejects(t *testing.T) {
	t.Parallel()
	var nilAck *agentproto.PlanAck
	huge := agentproto.ConsoleData{VMID: idA, StreamID: idB, Data: make([]byte, agentproto.MaxConsoleChunkBytes)}
	bigBatch := logBatch(agentproto.MaxLogBatchLines)
	for i := range bigBatch.Lines {
		bigBatch.Lines[i].Message = strings.Repeat("m", 2000)
	}
	cases := []struct {
		name string
		typ  string
		id   string
		data any
		want error
	}{
		{"not a message", agentproto.TypePlanAck, "", map[string]string{"plan_id": idA.String()}, agentproto.ErrInvalid},
		{"nil", agentproto.TypePlanAck, "", nil, agentproto.ErrInvalid},
		{"nil pointer", agentproto.TypePlanAck, "", nilAck, agentproto.ErrInvalid},
		{"type mismatch", agentproto.TypeResultAck, "", agentproto.PlanAck{PlanID: idA}, agentproto.ErrInvalid},
		{"bad id", agentproto.TypePlanAck, "a\"b", agentproto.PlanAck{PlanID: idA}, agentproto.ErrInvalid},
		{"over the frame limit", agentproto.TypeLogBatch, "", bigBatch, agentproto.ErrTooLarge},
		{"within the frame limit", agentproto.TypeConsoleData, "", huge, nil},
		{"pointer", agentproto.TypePlanAck, "", &agentproto.PlanAck{PlanID: idA}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			frame, err := agentproto.Encode(tc.typ, tc.id, 0, 0, tc.data)
			if tc.want == nil {
				require.NoError(t, err)
				require.LessOrEqual(t, len(frame), agentproto.MaxFrameBytes)
				return
			}
			require.ErrorIs(t, err, tc.want)
			require.Nil(t, frame)
		})
	}
}

func TestCloseFor(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		err    error
		code   websocket.StatusCode
		reason string
	}{
		{"too large", agentproto.ErrTooLarge, websocket.StatusMessageTooBig, agentproto.CloseTooLargeReason},
		{"unknown type", agentproto.ErrUnknownType, websocket.StatusUnsupportedData, agentproto.CloseUnknownTypeReason},
		{"malformed", agentproto.ErrMalformed, websocket.StatusInvalidFramePayloadData, "malformed frame"},
		{"invalid", agentproto.ErrInvalid, websocket.StatusInvalidFramePayloadData, "malformed frame"},
		{"other", errors.New("boom"), websocket.StatusProtocolError, agentproto.CloseProtocolErrorReason},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, reason := agentproto.CloseFor(fmt.Errorf("reading frame: %w", tc.err))
			require.Equal(t, tc.code, code)
			require.Equal(t, tc.reason, reason)
		})
	}
}

func TestCloseReasonsFitInACloseFrame(t *testing.T) {
	t.Parallel()
	reasons := []string{
		agentproto.CloseNormalReason, agentproto.CloseGoingAwayReason, agentproto.CloseSlowConsumerReason,
		agentproto.CloseMalformedReason, agentproto.CloseTooLargeReason, agentproto.CloseUnknownTypeReason,
		agentproto.CloseProtocolErrorReason, agentproto.CloseHeartbeatTimeoutReason,
		agentproto.CloseCapabilityTooOldReason, agentproto.CloseReplacedReason, agentproto.CloseRevokedReason,
		agentproto.CloseOverloadedReason,
	}
	for _, r := range reasons {
		require.LessOrEqual(t, len(r), 123, r)
		require.NotEmpty(t, r)
	}
	require.Equal(t, "capability version too old", agentproto.CloseCapabilityTooOldReason)
	require.Equal(t, websocket.StatusPolicyViolation, agentproto.CloseSlowConsumer)
}

func TestPermanent(t *testing.T) {
	t.Parallel()
	cases := []struct {
		code websocket.StatusCode
		want bool
	}{
		{agentproto.CloseRevoked, true},
		{agentproto.CloseCapabilityTooOld, true},
		{agentproto.CloseReplaced, true},
		{agentproto.CloseGoingAway, false},
		{agentproto.CloseSlowConsumer, false},
		{agentproto.CloseOverloaded, false},
		{agentproto.CloseMalformed, false},
		{websocket.StatusAbnormalClosure, false},
	}
	for _, tc := range cases {
		require.Equal(t, tc.want, agentproto.Permanent(tc.code), "code %d", tc.code)
	}
}

func TestSanitizeLogMessage(t *testing.T) {
	t.Parallel()
	euro := "€" // three bytes
	cases := []struct {
		name, in, want string
	}{
		{"plain", "hello", "hello"},
		{"invalid utf-8", "a\xffb\xc3", "a\uFFFDb\uFFFD"},
		{"exactly the limit", strings.Repeat("x", agentproto.MaxLogLineBytes), strings.Repeat("x", agentproto.MaxLogLineBytes)},
		{"over the limit", strings.Repeat("x", agentproto.MaxLogLineBytes+10), strings.Repeat("x", agentproto.MaxLogLineBytes)},
		{"cut inside a rune", "x" + strings.Repeat(euro, agentproto.MaxLogLineBytes/3), "x" + strings.Repeat(euro, (agentproto.MaxLogLineBytes-1)/3)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := agentproto.SanitizeLogMessage(tc.in)
			require.Equal(t, tc.want, got)
			line := agentproto.LogBatch{ExecutionID: idC, Lines: []agentproto.LogLine{{Seq: 1, At: at, Stream: "stderr", Message: got}}}
			require.NoError(t, line.Validate())
		})
	}
}

func TestKnownType(t *testing.T) {
	t.Parallel()
	for _, typ := range allTypes {
		require.True(t, agentproto.KnownType(typ), typ)
	}
	require.False(t, agentproto.KnownType(""))
	require.False(t, agentproto.KnownType("HELLO"))
}

func TestEncodedFrameIsCompactJSON(t *testing.T) {
	t.Parallel()
	frame, err := agentproto.Encode(agentproto.TypeHeartbeat, "hb-9", 12, 11, heartbeat())
	require.NoError(t, err)
	require.True(t, json.Valid(frame))
	var compact bytes.Buffer
	require.NoError(t, json.Compact(&compact, frame))
	require.Equal(t, compact.String(), string(frame))
	require.True(t, bytes.HasPrefix(frame, []byte(`{"type":"heartbeat","id":"hb-9","seq":12,"ack":11,"data":{`)))
}
