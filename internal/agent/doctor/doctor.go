package doctor

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kubedoio/n-kudo/internal/agent/imagedir"
	"github.com/kubedoio/n-kudo/internal/hypervisor/cloudhypervisor"
	"github.com/kubedoio/n-kudo/internal/netbird"
)

// Status of a check.
type Status string

// Statuses. Only StatusFail blocks running VMs.
const (
	StatusOK   Status = "ok"
	StatusWarn Status = "warn"
	StatusFail Status = "fail"
	StatusSkip Status = "skip"
)

// Check names.
const (
	CheckKVM       = "kvm"
	CheckVMM       = "cloud-hypervisor"
	CheckNetAdmin  = "net-admin"
	CheckImageDirs = "image-dirs"
	CheckStateDir  = "state-dir"
	CheckRuntime   = "runtime-dir"
	CheckServer    = "server"
	CheckClock     = "clock"
	CheckNetBird   = "netbird"
)

// Result is one check's outcome.
type Result struct {
	Check  string `json:"check"`
	Status Status `json:"status"`
	// Detail says what was found.
	Detail string `json:"detail"`
	// Fix is the one-line remedy of a warning or failure.
	Fix string `json:"fix,omitempty"`
}

// Report is every check's result.
type Report struct {
	Results []Result `json:"checks"`
	// OK is true when no check failed: the host can run VMs.
	OK bool `json:"ok"`
}

// Options names what the checks look at. Zero values take the defaults of
// `nkudo-agent run`.
type Options struct {
	// KVMDevice defaults to /dev/kvm.
	KVMDevice string
	// CloudHypervisorBin is a path or a name on PATH; default
	// "cloud-hypervisor".
	CloudHypervisorBin string
	// NetBirdBin is a path or a name on PATH; default "netbird".
	NetBirdBin string
	// NetBirdRequired makes a missing or disconnected NetBird a failure
	// (the agent runs with --netbird-enabled); otherwise a warning.
	NetBirdRequired bool
	ImageDirs       []string
	StateDir        string
	RuntimeDir      string
	// Server and CAFingerprint (or CAFile) name the server to check when
	// the state dir holds no identity; an enrolled agent's own server and
	// CA are used otherwise.
	Server, CAFingerprint, CAFile string
	// NetAdmin checks the right to create a bridge and a TAP; default
	// NetAdminInThrowawayNS.
	NetAdmin func(ctx context.Context) error
	// Timeout bounds each network check; default 5 s.
	Timeout time.Duration
	Now     func() time.Time
}

func (o *Options) setDefaults() {
	if o.KVMDevice == "" {
		o.KVMDevice = "/dev/kvm"
	}
	if o.CloudHypervisorBin == "" {
		o.CloudHypervisorBin = cloudhypervisor.BinaryName
	}
	if o.NetBirdBin == "" {
		o.NetBirdBin = netbird.DefaultBin
	}
	if len(o.ImageDirs) == 0 {
		o.ImageDirs = []string{imagedir.DefaultDir}
	}
	if o.NetAdmin == nil {
		o.NetAdmin = NetAdminInThrowawayNS
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Run runs every check, in the order an operator fixes them.
func Run(ctx context.Context, o Options) Report {
	o.setDefaults()
	var r Report
	r.Results = append(r.Results,
		checkKVM(o.KVMDevice),
		checkVMM(ctx, o.CloudHypervisorBin),
		checkNetAdmin(ctx, o.NetAdmin),
		checkImageDirs(o.ImageDirs),
		checkDir(CheckStateDir, o.StateDir, 0o077, "it holds the agent's private key"),
		checkDir(CheckRuntime, o.RuntimeDir, 0o022, "it holds VM sockets, disks and logs"),
	)
	r.Results = append(r.Results, checkServer(ctx, o)...)
	r.Results = append(r.Results, checkNetBird(ctx, o))
	r.OK = true
	for _, res := range r.Results {
		if res.Status == StatusFail {
			r.OK = false
		}
	}
	return r
}

// KVMProblem is why VMs cannot run for lack of KVM, or "" when the device
// opens read-write (what the VMM does).
func KVMProblem(device string) string {
	if res := checkKVM(device); res.Status == StatusFail {
		return res.Detail + "; " + res.Fix
	}
	return ""
}

// VMMProblem is why the Cloud Hypervisor binary cannot be used, or "".
func VMMProblem(ctx context.Context, bin string) string {
	if res := checkVMM(ctx, bin); res.Status == StatusFail {
		return res.Detail + "; " + res.Fix
	}
	return ""
}

func checkVMM(ctx context.Context, bin string) Result {
	res := Result{Check: CheckVMM}
	path, err := exec.LookPath(bin)
	if err != nil {
		res.Status, res.Detail = StatusFail, fmt.Sprintf("%s not found: %v", bin, err)
		res.Fix = fmt.Sprintf("install Cloud Hypervisor v%s or newer (github.com/cloud-hypervisor/cloud-hypervisor/releases) on PATH, or pass --cloud-hypervisor-bin", cloudhypervisor.OldestTestedVersion)
		return res
	}
	vctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := cloudhypervisor.ReadVersion(vctx, path)
	if err != nil {
		res.Status, res.Detail = StatusFail, fmt.Sprintf("%s does not run: %v", path, err)
		res.Fix = "reinstall Cloud Hypervisor: `" + path + " --version` must print its version"
		return res
	}
	res.Status, res.Detail = StatusOK, fmt.Sprintf("%s %s", path, v)
	if cloudhypervisor.BelowTested(v) {
		res.Status = StatusWarn
		res.Fix = fmt.Sprintf("upgrade Cloud Hypervisor to v%s or newer: older releases are not tested", cloudhypervisor.OldestTestedVersion)
	}
	return res
}

func checkNetAdmin(ctx context.Context, try func(context.Context) error) Result {
	res := Result{Check: CheckNetAdmin}
	if err := try(ctx); err != nil {
		res.Status, res.Detail = StatusFail, "cannot create a bridge and a TAP device: "+err.Error()
		res.Fix = "run the agent as root (or with CAP_NET_ADMIN) on a kernel with the bridge and tun modules (modprobe tun bridge)"
		return res
	}
	res.Status, res.Detail = StatusOK, "created and removed a bridge and a TAP device in a throwaway network namespace"
	return res
}

func checkNetBird(ctx context.Context, o Options) Result {
	res := Result{Check: CheckNetBird}
	bad := StatusWarn
	if o.NetBirdRequired {
		bad = StatusFail
	}
	path, err := exec.LookPath(o.NetBirdBin)
	if err != nil {
		res.Status, res.Detail = bad, fmt.Sprintf("%s not found; the host cannot join the mesh", o.NetBirdBin)
		res.Fix = "install the NetBird client (pkgs.netbird.io) if the agent runs with --netbird-enabled, or pass --netbird-bin"
		return res
	}
	sctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	st, err := netbird.NewCLI(netbird.CLIOptions{Bin: path, Timeout: o.Timeout}).Status(sctx)
	if err != nil {
		res.Status, res.Detail = bad, fmt.Sprintf("%s status failed: %v", path, err)
		res.Fix = "start the NetBird daemon (netbird service install && netbird service start)"
		return res
	}
	res.Status = StatusOK
	res.Detail = fmt.Sprintf("%s %s, management connected=%t, ip %s", path, st.CLIVersion, st.Management.Connected, orDash(st.NetBirdIP))
	return res
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Fixes lists, one line each, what to do about each failure.
func (r Report) Fixes() []string {
	var out []string
	for _, res := range r.Results {
		if res.Status == StatusFail {
			out = append(out, res.Check+": "+res.Fix)
		}
	}
	return out
}

// WriteTable prints the report as a table, then the fix of every warning
// and blocker, one line each.
func (r Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tSTATUS\tDETAIL")
	for _, res := range r.Results {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", res.Check, res.Status, oneLine(res.Detail))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("writing report: %w", err)
	}
	var b strings.Builder
	for _, res := range r.Results {
		if res.Status == StatusWarn && res.Fix != "" {
			fmt.Fprintf(&b, "warning: %s: %s\n", res.Check, res.Fix)
		}
	}
	for _, f := range r.Fixes() {
		fmt.Fprintf(&b, "blocker: %s\n", f)
	}
	if r.OK {
		b.WriteString("this host can run VMs\n")
	} else {
		b.WriteString("this host cannot run VMs until the blockers above are fixed\n")
	}
	_, err := io.WriteString(w, "\n"+b.String())
	return err
}

// WriteJSON prints the report as one JSON object.
func (r Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// httpDate parses an HTTP Date header.
func httpDate(h http.Header) (time.Time, bool) {
	t, err := http.ParseTime(h.Get("Date"))
	return t, err == nil
}
