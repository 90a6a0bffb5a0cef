package agentproto_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kubedoio/n-kudo/internal/agentproto"
)

// pemFixture holds a CSR and a self-signed certificate, generated once:
// ECDSA key generation is cheap, but not free under -race and fuzzing.
type pemFixture struct {
	csr, cert string
}

var pemOnce = sync.OnceValues(func() (pemFixture, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return pemFixture{}, fmt.Errorf("generating key: %w", err)
	}
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "agent"},
	}, key)
	if err != nil {
		return pemFixture{}, fmt.Errorf("creating csr: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "nkudo test ca"},
		NotBefore:             time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(2036, 1, 1, 0, 0, 0, 0, time.UTC),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	certDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return pemFixture{}, fmt.Errorf("creating certificate: %w", err)
	}
	return pemFixture{
		csr:  string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER})),
		cert: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER})),
	}, nil
})

func pems(tb testing.TB) pemFixture {
	tb.Helper()
	p, err := pemOnce()
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

var (
	idA = uuid.MustParse("01932f6e-0000-7000-8000-00000000000a")
	idB = uuid.MustParse("01932f6e-0000-7000-8000-00000000000b")
	idC = uuid.MustParse("01932f6e-0000-7000-8000-00000000000c")
	idD = uuid.MustParse("01932f6e-0000-7000-8000-00000000000d")
	at  = time.Date(2026, 11, 27, 22, 53, 5, 123456789, time.UTC)
)

func facts() agentproto.HostFacts {
	return agentproto.HostFacts{
		Hostname: "edge-01", OS: "linux", Kernel: "6.12.1", Arch: "amd64",
		CPUModel: "AMD EPYC 7443P", CPUCores: 24, MemoryTotalBytes: 64 << 30,
		Disks: []agentproto.Disk{
			{Mount: "/", Device: "/dev/nvme0n1p2", FSType: "ext4", TotalBytes: 500 << 30, FreeBytes: 200 << 30},
		},
		KVM:            true,
		Hypervisor:     agentproto.Hypervisor{Kind: agentproto.HypervisorCloudHypervisor, Version: "v44.0"},
		NetBirdVersion: "0.36.5",
		AgentVersion:   "1.0.0",
	}
}

func netbird() agentproto.NetBirdStatus {
	return agentproto.NetBirdStatus{
		State: agentproto.NetBirdConnected, IP: "100.64.0.7/16", FQDN: "edge-01.netbird.cloud",
		PeersConnected: 3, PeersTotal: 4, ManagementConnected: true, SignalConnected: true,
		Probe: &agentproto.NetBirdProbe{OK: true, LatencyMS: 12.5},
	}
}

func hello() agentproto.Hello {
	return agentproto.Hello{
		AgentVersion: "1.0.0", CapabilityVersion: agentproto.CapabilityVersion,
		Capabilities:   []string{"console", "pause"},
		Facts:          facts(),
		VMs:            []agentproto.VMStatus{{VMID: idA, State: agentproto.VMRunning}, {VMID: idB, State: agentproto.VMFailed, Error: "kernel panic"}},
		NetBird:        netbird(),
		PendingResults: []uuid.UUID{idC},
	}
}

func heartbeat() agentproto.Heartbeat {
	f := facts()
	return agentproto.Heartbeat{
		At:      at,
		Facts:   &f,
		Usage:   agentproto.Usage{CPUPercent: 37.5, MemoryUsedBytes: 12 << 30, DiskUsedBytes: 300 << 30, Load1: 2.25, UptimeSeconds: 86400, VMsRunning: 1},
		VMs:     []agentproto.VMStatus{{VMID: idA, State: agentproto.VMRunning}},
		NetBird: netbird(),
	}
}

func actionResult() agentproto.ActionResult {
	return agentproto.ActionResult{
		PlanID: idA, ActionID: idB, ExecutionID: idC,
		Status: agentproto.ResultFailed, Error: "vm.boot: 500", VMState: agentproto.VMFailed, At: at,
	}
}

func logBatch(n int) agentproto.LogBatch {
	b := agentproto.LogBatch{ExecutionID: idC, Lines: make([]agentproto.LogLine, n)}
	for i := range b.Lines {
		b.Lines[i] = agentproto.LogLine{
			Seq: int64(i + 1), At: at.Add(time.Duration(i) * time.Millisecond), Stream: agentproto.StreamStdout,
			Message: fmt.Sprintf("[%6d] cloud-hypervisor: booting vCPU %d, \"quoted\" <tag> ünïcode", i, i%8),
		}
	}
	return b
}

func plan() agentproto.Plan {
	return agentproto.Plan{PlanID: idA, Actions: []agentproto.Action{
		{ActionID: idB, ExecutionID: idC, Type: agentproto.ActionMicroVMCreate, VMID: idD,
			Params: json.RawMessage(`{"vcpus":2,"memory_mib":512,"disk_image":"ubuntu.raw","cloud_init":{"user_data":"#cloud-config\n"}}`)},
		{ActionID: idC, ExecutionID: idB, Type: agentproto.ActionMicroVMStart, VMID: idD},
	}}
}

func helloAck() agentproto.HelloAck {
	return agentproto.HelloAck{
		AgentID: idA, CapabilityVersion: agentproto.CapabilityVersion,
		HeartbeatIntervalMS: agentproto.DefaultHeartbeatIntervalMS, ServerTime: at,
		Limits: agentproto.DefaultLimits(),
	}
}

// validMessages returns one valid value of every message type, keyed by a
// case name, the seed of the round-trip tests and of the fuzz corpus.
func validMessages(tb testing.TB) []struct {
	name string
	msg  agentproto.Message
} {
	p := pems(tb)
	simFacts := facts()
	simFacts.Hypervisor = agentproto.Hypervisor{Kind: agentproto.HypervisorSim, Simulated: true}
	minimalHeartbeat := heartbeat()
	minimalHeartbeat.Facts = nil
	minimalHeartbeat.VMs = nil
	minimalHeartbeat.NetBird = agentproto.NetBirdStatus{State: agentproto.NetBirdDisabled}
	simHello := hello()
	simHello.Facts = simFacts
	simHello.PendingResults = nil
	succeeded := actionResult()
	succeeded.Status, succeeded.Error, succeeded.VMState = agentproto.ResultSucceeded, "", agentproto.VMRunning
	return []struct {
		name string
		msg  agentproto.Message
	}{
		{"hello", hello()},
		{"hello sim", simHello},
		{"heartbeat with facts", heartbeat()},
		{"heartbeat minimal", minimalHeartbeat},
		{"action_result failed", actionResult()},
		{"action_result succeeded", succeeded},
		{"log_batch one line", logBatch(1)},
		{"log_batch full", logBatch(agentproto.MaxLogBatchLines)},
		{"cert_renew", agentproto.CertRenew{CSR: p.csr}},
		{"plan_ack", agentproto.PlanAck{PlanID: idA}},
		{"console_data", agentproto.ConsoleData{VMID: idA, StreamID: idB, Data: []byte("login: \x1b[0m\x00\xff")}},
		{"console_data snapshot_done", agentproto.ConsoleData{VMID: idA, StreamID: idB, SnapshotDone: true}},
		{"hello_ack", helloAck()},
		{"plan", plan()},
		{"result_ack", agentproto.ResultAck{ActionID: idB}},
		{"log_ack", agentproto.LogAck{ExecutionID: idC, Seq: 1000}},
		{"cert_renewed", agentproto.CertRenewed{Certificate: p.cert, CA: p.cert + p.cert, ExpiresAt: at.Add(24 * time.Hour)}},
		{"revoked", agentproto.Revoked{Reason: "revoked by admin@example.com"}},
		{"console_start", agentproto.ConsoleStart{VMID: idA, StreamID: idB}},
		{"console_stop", agentproto.ConsoleStop{VMID: idA, StreamID: idB}},
		{"error", agentproto.Error{Code: agentproto.ErrorCodeUnexpected, Message: "result for unknown action"}},
	}
}
