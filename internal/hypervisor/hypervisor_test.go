package hypervisor

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// matrix is the table of the package comment, transcribed independently of
// the implementation: "=" no-op, "x" invalid, otherwise the resulting state.
var matrix = map[State]map[Op]string{
	StateCreating: {OpCreate: "=", OpStart: "x", OpStop: "x", OpReboot: "x", OpPause: "x", OpResume: "x", OpDelete: "deleted"},
	StateStopped:  {OpCreate: "=", OpStart: "running", OpStop: "=", OpReboot: "x", OpPause: "x", OpResume: "x", OpDelete: "deleted"},
	StateRunning:  {OpCreate: "=", OpStart: "=", OpStop: "stopped", OpReboot: "running", OpPause: "paused", OpResume: "=", OpDelete: "deleted"},
	StatePaused:   {OpCreate: "=", OpStart: "x", OpStop: "stopped", OpReboot: "x", OpPause: "=", OpResume: "running", OpDelete: "deleted"},
	StateFailed:   {OpCreate: "=", OpStart: "running", OpStop: "stopped", OpReboot: "x", OpPause: "x", OpResume: "x", OpDelete: "deleted"},
	StateDeleted:  {OpCreate: "x", OpStart: "x", OpStop: "x", OpReboot: "x", OpPause: "x", OpResume: "x", OpDelete: "="},
}

var allOps = []Op{OpCreate, OpStart, OpStop, OpReboot, OpPause, OpResume, OpDelete}

func TestTransitionMatrix(t *testing.T) {
	t.Parallel()
	id := uuid.New()
	for from, row := range matrix {
		require.Len(t, row, len(allOps), "row %s covers every op", from)
		for op, want := range row {
			t.Run(string(from)+"/"+string(op), func(t *testing.T) {
				t.Parallel()
				to, noop, err := Transition(id, from, op)
				switch want {
				case "=":
					require.NoError(t, err)
					require.True(t, noop)
					require.Equal(t, from, to)
				case "x":
					require.ErrorIs(t, err, ErrInvalidTransition)
					var te *TransitionError
					require.True(t, errors.As(err, &te))
					require.Equal(t, from, te.From)
					require.Equal(t, op, te.Op)
					// The message names both states.
					require.Contains(t, err.Error(), "from "+string(from)+" to "+string(te.To))
					require.Equal(t, from, to, "an invalid transition leaves the state alone")
				default:
					require.NoError(t, err)
					require.False(t, noop)
					require.Equal(t, State(want), to)
				}
			})
		}
	}
}

func TestTransitionUnknownInputs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		from State
		op   Op
	}{
		{"unknown op", StateRunning, Op("explode")},
		{"unknown state", State("limbo"), OpStart},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := Transition(uuid.New(), tt.from, tt.op)
			require.Error(t, err)
		})
	}
}

func validSpec() VMSpec {
	return VMSpec{
		ID:        uuid.New(),
		Name:      "web-1",
		VCPUs:     2,
		MemoryMiB: 512,
		Kernel:    "/var/lib/nkudo/images/vmlinux",
		Cmdline:   "console=ttyS0 root=/dev/vda",
		DiskImage: "/var/lib/nkudo/images/ubuntu.raw",
		CloudInit: CloudInit{UserData: "#cloud-config\n"},
		MAC:       "52:54:00:12:34:56",
	}
}

func TestVMSpecValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		mutate  func(*VMSpec)
		wantErr string // empty: valid
	}{
		{"valid", func(*VMSpec) {}, ""},
		{"firmware boot without kernel", func(s *VMSpec) { s.Kernel, s.Cmdline = "", "" }, ""},
		{"no mac", func(s *VMSpec) { s.MAC = "" }, ""},
		{"min bounds", func(s *VMSpec) { s.VCPUs, s.MemoryMiB = MinVCPUs, MinMemoryMiB }, ""},
		{"max bounds", func(s *VMSpec) { s.VCPUs, s.MemoryMiB = MaxVCPUs, MaxMemoryMiB }, ""},
		{"nil id", func(s *VMSpec) { s.ID = uuid.Nil }, "id is required"},
		{"empty name", func(s *VMSpec) { s.Name = "" }, "name"},
		{"name with slash", func(s *VMSpec) { s.Name = "a/b" }, "name"},
		{"name too long", func(s *VMSpec) { s.Name = strings.Repeat("a", MaxNameLen+1) }, "name"},
		{"zero vcpus", func(s *VMSpec) { s.VCPUs = 0 }, "vcpus must be 1 to 64, not 0"},
		{"too many vcpus", func(s *VMSpec) { s.VCPUs = 65 }, "not 65"},
		{"too little memory", func(s *VMSpec) { s.MemoryMiB = 63 }, "memory_mib must be 64 to"},
		{"too much memory", func(s *VMSpec) { s.MemoryMiB = MaxMemoryMiB + 1 }, "memory_mib"},
		{"no disk", func(s *VMSpec) { s.DiskImage = "" }, "disk_image is required"},
		{"relative disk", func(s *VMSpec) { s.DiskImage = "disk.raw" }, "absolute path"},
		{"relative kernel", func(s *VMSpec) { s.Kernel = "vmlinux" }, "kernel"},
		{"cmdline without kernel", func(s *VMSpec) { s.Kernel = "" }, "cmdline needs a kernel"},
		{"huge cmdline", func(s *VMSpec) { s.Cmdline = strings.Repeat("x", MaxCmdlineLen+1) }, "cmdline must be one line"},
		{"huge user data", func(s *VMSpec) { s.CloudInit.UserData = strings.Repeat("x", MaxUserData+1) }, "user_data"},
		{"legacy name", func(s *VMSpec) { s.Name = "Web_1.a" }, ""},
		{"dashed mac", func(s *VMSpec) { s.MAC = "52-54-00-12-34-56" }, "mac"},
		{"comma in disk", func(s *VMSpec) { s.DiskImage = "/img/a,b" }, "disk_image"},
		{"dotdot in kernel", func(s *VMSpec) { s.Kernel = "/img/../etc/shadow" }, "'..'"},
		{"bad mac", func(s *VMSpec) { s.MAC = "zz:00:00:00:00:00" }, "mac"},
		{"long mac", func(s *VMSpec) { s.MAC = "00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01" }, "six colon-separated"},
		{"multicast mac", func(s *VMSpec) { s.MAC = "01:00:5e:00:00:01" }, "multicast"},
		{"several problems at once", func(s *VMSpec) { s.VCPUs, s.DiskImage = 0, "" }, "vcpus must be 1 to 64, not 0; disk_image is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := validSpec()
			tt.mutate(&s)
			err := s.Validate()
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrInvalidSpec)
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}
