package agentproto

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
)

// Sentinel errors. Every error returned by this package wraps exactly one of
// them, so a receiver can pick a close status with errors.Is (see CloseFor).
var (
	// ErrTooLarge: a frame exceeds MaxFrameBytes.
	ErrTooLarge = errors.New("frame too large")
	// ErrMalformed: a frame or message body is not the JSON this protocol
	// defines (invalid JSON, wrong shape, unknown envelope field, missing
	// type, wrong field types).
	ErrMalformed = errors.New("malformed frame")
	// ErrUnknownType: a well-formed envelope names a message type this
	// version does not know. Distinct from ErrMalformed because it usually
	// means a newer peer, not a broken one.
	ErrUnknownType = errors.New("unknown message type")
	// ErrInvalid: a well-formed message breaks a rule its receiver relies
	// on (a nil id, a non-increasing log seq, too many actions, …).
	ErrInvalid = errors.New("invalid message")
)

// Envelope is one frame on the agent channel.
type Envelope struct {
	// Type names the message held in Data (one of the Type* constants).
	Type string `json:"type"`
	// ID is an opaque message id chosen by the sender, echoed by a reply
	// that answers this message; empty when no reply is correlated.
	ID string `json:"id,omitempty"`
	// Seq is the sender's sequence number for reliable messages within
	// this session, starting at 1; 0 for unsequenced messages.
	Seq uint64 `json:"seq,omitempty"`
	// Ack is the highest peer Seq the sender has processed; 0 for none.
	Ack uint64 `json:"ack,omitempty"`
	// Data is the message body, a JSON object.
	Data json.RawMessage `json:"data,omitempty"`
}

// Message is implemented by every message body of the protocol.
type Message interface {
	// MessageType returns the envelope type of the message.
	MessageType() string
	// Validate reports, wrapping ErrInvalid, the first rule the message
	// breaks that its receiver relies on.
	Validate() error
}

// Encode validates data and returns the frame carrying it. data must be
// one of this package's message types and match typ; an invalid message is
// refused here rather than by the peer, so bugs show up at the sender.
// The frame is refused with ErrTooLarge when it exceeds MaxFrameBytes.
func Encode(typ string, id string, seq, ack uint64, data any) ([]byte, error) {
	msg, ok := data.(Message)
	if v := reflect.ValueOf(data); ok && v.Kind() == reflect.Pointer && v.IsNil() {
		return nil, fmt.Errorf("encoding %q: nil %T: %w", typ, data, ErrInvalid)
	}
	if !ok {
		return nil, fmt.Errorf("encoding %q: %T is not a protocol message: %w", typ, data, ErrInvalid)
	}
	if msg.MessageType() != typ {
		return nil, fmt.Errorf("encoding %q: body is a %q message: %w", typ, msg.MessageType(), ErrInvalid)
	}
	if err := checkEnvelopeID(id); err != nil {
		return nil, fmt.Errorf("encoding %q: %w: %w", typ, ErrInvalid, err)
	}
	if err := msg.Validate(); err != nil {
		return nil, fmt.Errorf("encoding %q: %w", typ, err)
	}
	body, err := json.Marshal(msg)
	if err != nil {
		return nil, fmt.Errorf("encoding %q: marshalling body: %w: %w", typ, ErrInvalid, err)
	}
	// The envelope is assembled by hand: marshalling it with a
	// json.RawMessage would scan and copy the body a second time, which
	// matters for 1,000-line log batches.
	frame := make([]byte, 0, len(body)+len(typ)+len(id)+64)
	frame = append(frame, `{"type":`...)
	frame = strconv.AppendQuote(frame, typ)
	if id != "" {
		// checkEnvelopeID allows only printable ASCII without quotes or
		// backslashes, so the id needs no escaping.
		frame = append(frame, `,"id":"`...)
		frame = append(frame, id...)
		frame = append(frame, '"')
	}
	if seq != 0 {
		frame = append(frame, `,"seq":`...)
		frame = strconv.AppendUint(frame, seq, 10)
	}
	if ack != 0 {
		frame = append(frame, `,"ack":`...)
		frame = strconv.AppendUint(frame, ack, 10)
	}
	frame = append(frame, `,"data":`...)
	frame = append(frame, body...)
	frame = append(frame, '}')
	if len(frame) > MaxFrameBytes {
		return nil, fmt.Errorf("encoding %q: %d bytes over the %d byte limit: %w", typ, len(frame), MaxFrameBytes, ErrTooLarge)
	}
	return frame, nil
}

// checkEnvelopeID checks a message id: short printable ASCII, so it can be
// logged and echoed without escaping concerns.
func checkEnvelopeID(id string) error {
	if len(id) > MaxNameBytes {
		return fmt.Errorf("message id is %d bytes, over %d", len(id), MaxNameBytes)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return fmt.Errorf("message id has byte %#x", c)
		}
	}
	return nil
}

// Decode parses one frame. It refuses frames over MaxFrameBytes, anything
// but a single JSON object, unknown envelope fields, a missing type and an
// invalid message id with ErrTooLarge or ErrMalformed, and types this
// version does not know with ErrUnknownType. The body is left in Data for
// DecodeData or DecodeMessage; Data aliases frame.
func Decode(frame []byte) (Envelope, error) {
	var env Envelope
	if len(frame) > MaxFrameBytes {
		return env, fmt.Errorf("decoding frame: %d bytes over the %d byte limit: %w", len(frame), MaxFrameBytes, ErrTooLarge)
	}
	trimmed := bytes.TrimLeft(frame, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return env, fmt.Errorf("decoding frame: not a JSON object: %w", ErrMalformed)
	}
	env, err := decodeEnvelope(frame)
	if err != nil {
		return Envelope{}, fmt.Errorf("decoding frame: %w: %w", ErrMalformed, err)
	}
	if env.Type == "" {
		return Envelope{}, fmt.Errorf("decoding frame: missing type: %w", ErrMalformed)
	}
	if err := checkEnvelopeID(env.ID); err != nil {
		return Envelope{}, fmt.Errorf("decoding %.64q frame: %w: %w", env.Type, ErrMalformed, err)
	}
	if !KnownType(env.Type) {
		return Envelope{}, fmt.Errorf("decoding frame: type %.64q: %w", env.Type, ErrUnknownType)
	}
	return env, nil
}

// DecodeData parses and validates the body of env as a T. Unknown fields
// inside the body are ignored (forward compatibility); a body that is not a
// JSON object of the right shape is ErrMalformed, one that fails Validate is
// ErrInvalid, and an envelope of another type is ErrMalformed. T is a
// message value type (Hello, not *Hello).
func DecodeData[T Message](env Envelope) (T, error) {
	var msg T
	if env.Type != msg.MessageType() {
		return msg, fmt.Errorf("decoding %.64q body as %q: %w", env.Type, msg.MessageType(), ErrMalformed)
	}
	if err := unmarshalBody(env, &msg); err != nil {
		var zero T
		return zero, err
	}
	if err := msg.Validate(); err != nil {
		var zero T
		return zero, fmt.Errorf("decoding %q body: %w", env.Type, err)
	}
	return msg, nil
}

func unmarshalBody(env Envelope, dst any) error {
	data := bytes.TrimLeft(env.Data, " \t\r\n")
	if len(data) == 0 || data[0] != '{' {
		return fmt.Errorf("decoding %q body: not a JSON object: %w", env.Type, ErrMalformed)
	}
	if err := json.Unmarshal(data, dst); err != nil {
		return fmt.Errorf("decoding %q body: %w: %w", env.Type, ErrMalformed, err)
	}
	return nil
}

// DecodeMessage parses and validates the body of env into the message type
// env.Type names, for receivers that dispatch with a type switch. The
// returned value is a value, not a pointer (Hello, not *Hello).
func DecodeMessage(env Envelope) (Message, error) {
	switch env.Type {
	case TypeHello:
		return DecodeData[Hello](env)
	case TypeHeartbeat:
		return DecodeData[Heartbeat](env)
	case TypeActionResult:
		return DecodeData[ActionResult](env)
	case TypeLogBatch:
		return DecodeData[LogBatch](env)
	case TypeCertRenew:
		return DecodeData[CertRenew](env)
	case TypePlanAck:
		return DecodeData[PlanAck](env)
	case TypeConsoleData:
		return DecodeData[ConsoleData](env)
	case TypeHelloAck:
		return DecodeData[HelloAck](env)
	case TypePlan:
		return DecodeData[Plan](env)
	case TypeResultAck:
		return DecodeData[ResultAck](env)
	case TypeLogAck:
		return DecodeData[LogAck](env)
	case TypeCertRenewed:
		return DecodeData[CertRenewed](env)
	case TypeRevoked:
		return DecodeData[Revoked](env)
	case TypeConsoleStart:
		return DecodeData[ConsoleStart](env)
	case TypeConsoleStop:
		return DecodeData[ConsoleStop](env)
	case TypeError:
		return DecodeData[Error](env)
	}
	return nil, fmt.Errorf("decoding body: type %.64q: %w", env.Type, ErrUnknownType)
}
