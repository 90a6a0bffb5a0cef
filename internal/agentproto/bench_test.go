package agentproto_test

import (
	"testing"

	"github.com/kubedoio/n-kudo/internal/agentproto"
)

// The server decodes ~10,000 heartbeats and ~50 full log batches per
// second on two cores; these benchmarks keep an eye on that budget.

func benchEncode(b *testing.B, msg agentproto.Message) {
	b.Helper()
	frame, err := agentproto.Encode(msg.MessageType(), "bench", 1, 1, msg)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := agentproto.Encode(msg.MessageType(), "bench", 1, 1, msg); err != nil {
			b.Fatal(err)
		}
	}
}

func benchDecode[T agentproto.Message](b *testing.B, msg T) {
	b.Helper()
	frame, err := agentproto.Encode(msg.MessageType(), "bench", 1, 1, msg)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		env, err := agentproto.Decode(frame)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := agentproto.DecodeData[T](env); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeHeartbeat(b *testing.B) {
	hb := heartbeat()
	hb.Facts = nil // the common case: facts unchanged
	benchEncode(b, hb)
}

func BenchmarkDecodeHeartbeat(b *testing.B) {
	hb := heartbeat()
	hb.Facts = nil
	benchDecode(b, hb)
}

func BenchmarkEncodeLogBatch1000(b *testing.B) {
	benchEncode(b, logBatch(agentproto.MaxLogBatchLines))
}

func BenchmarkDecodeLogBatch1000(b *testing.B) {
	benchDecode(b, logBatch(agentproto.MaxLogBatchLines))
}
