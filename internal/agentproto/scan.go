package agentproto

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// decodeEnvelope parses the envelope object by hand instead of with
// encoding/json, for two reasons. Correctness: json.Unmarshal matches keys
// case-insensitively and lets a repeated key silently win, so two parsers
// could read different types from one frame; here keys must match exactly,
// once each. Speed: the envelope is parsed for every frame of 10,000
// agents, and a hand scan over a frame already checked by json.Valid costs
// a fraction of a reflective decode and leaves Data aliasing frame instead
// of copying it.
func decodeEnvelope(frame []byte) (Envelope, error) {
	var env Envelope
	if !json.Valid(frame) {
		// Only on this path: let encoding/json describe the syntax error.
		var v struct{}
		if err := json.Unmarshal(frame, &v); err != nil {
			return env, err
		}
		return env, errors.New("invalid JSON")
	}
	s := scanner{b: frame}
	s.skipSpace()
	if !s.consume('{') {
		return env, errors.New("not a JSON object")
	}
	var seen [5]bool
	s.skipSpace()
	if s.consume('}') {
		return env, nil
	}
	for {
		s.skipSpace()
		keyStart := s.i
		keyEnd, err := s.stringEnd()
		if err != nil {
			return env, err
		}
		rawKey := frame[keyStart:keyEnd]
		s.skipSpace()
		if !s.consume(':') {
			return env, errors.New("missing colon after a key")
		}
		s.skipSpace()
		valStart := s.i
		valEnd, err := s.valueEnd()
		if err != nil {
			return env, err
		}
		val := frame[valStart:valEnd]
		key, err := unquote(rawKey)
		if err != nil {
			return env, err
		}
		idx := -1
		switch key {
		case "type":
			idx = 0
			env.Type, err = stringValue(val)
		case "id":
			idx = 1
			env.ID, err = stringValue(val)
		case "seq":
			idx = 2
			env.Seq, err = uintValue(val)
		case "ack":
			idx = 3
			env.Ack, err = uintValue(val)
		case "data":
			idx = 4
			env.Data = json.RawMessage(val)
		default:
			return env, fmt.Errorf("unknown envelope field %.64q", key)
		}
		if err != nil {
			return env, fmt.Errorf("envelope field %q: %w", key, err)
		}
		if seen[idx] {
			return env, fmt.Errorf("repeated envelope field %q", key)
		}
		seen[idx] = true
		s.skipSpace()
		if s.consume(',') {
			continue
		}
		if s.consume('}') {
			return env, nil
		}
		return env, errors.New("expected , or } after a value")
	}
}

// scanner walks a byte slice that json.Valid accepted. It still checks
// every bound, so a bug in the caller's assumption cannot become a panic.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) skipSpace() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\r', '\n':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) consume(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// stringEnd returns the index just past the string starting at s.i, and
// moves there.
func (s *scanner) stringEnd() (int, error) {
	if !s.consume('"') {
		return 0, errors.New("expected a string")
	}
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case '\\':
			s.i += 2
		case '"':
			s.i++
			return s.i, nil
		default:
			s.i++
		}
	}
	return 0, errors.New("unterminated string")
}

// valueEnd returns the index just past the value starting at s.i, and
// moves there.
func (s *scanner) valueEnd() (int, error) {
	if s.i >= len(s.b) {
		return 0, errors.New("missing value")
	}
	switch s.b[s.i] {
	case '"':
		return s.stringEnd()
	case '{', '[':
		depth := 0
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case '"':
				if _, err := s.stringEnd(); err != nil {
					return 0, err
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					s.i++
					return s.i, nil
				}
			}
			s.i++
		}
		return 0, errors.New("unterminated value")
	default: // number, true, false, null
		start := s.i
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case ',', '}', ']', ' ', '\t', '\r', '\n':
				return s.i, nil
			}
			s.i++
		}
		if s.i == start {
			return 0, errors.New("missing value")
		}
		return s.i, nil
	}
}

// unquote returns the string a JSON string token holds. Tokens without
// escapes are sliced; the rare escaped one goes through encoding/json.
func unquote(tok []byte) (string, error) {
	if len(tok) < 2 || tok[0] != '"' || tok[len(tok)-1] != '"' {
		return "", errors.New("expected a string")
	}
	if bytes.IndexByte(tok, '\\') < 0 {
		return string(tok[1 : len(tok)-1]), nil
	}
	var str string
	if err := json.Unmarshal(tok, &str); err != nil {
		return "", err
	}
	return str, nil
}

var null = []byte("null")

// stringValue decodes a string field; null means absent, as it does for
// encoding/json.
func stringValue(val []byte) (string, error) {
	if bytes.Equal(val, null) {
		return "", nil
	}
	return unquote(val)
}

// uintValue decodes an unsigned integer field: digits only (no sign,
// fraction or exponent), without overflow; null means absent.
func uintValue(val []byte) (uint64, error) {
	if bytes.Equal(val, null) {
		return 0, nil
	}
	if len(val) == 0 {
		return 0, errors.New("expected an unsigned integer")
	}
	var n uint64
	for _, c := range val {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%.32s is not an unsigned integer", val)
		}
		d := uint64(c - '0')
		if n > (1<<64-1-d)/10 {
			return 0, fmt.Errorf("%.32s overflows 64 bits", val)
		}
		n = n*10 + d
	}
	return n, nil
}
