package vmspec_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/vmspec"
)

func valid() vmspec.Spec {
	return vmspec.Spec{Name: "web-1", VCPUs: 2, MemoryMiB: 512, DiskImage: "/var/lib/nkudo-agent/images/alpine.raw"}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(*vmspec.Spec)
		// fields are the fields of the problems found, in order; none
		// means valid.
		fields []string
		want   string
	}{
		{name: "minimal", mutate: func(*vmspec.Spec) {}},
		{name: "kernel boot", mutate: func(s *vmspec.Spec) {
			s.Kernel, s.Initramfs, s.Cmdline = "/img/vmlinux", "/img/initrd", "console=ttyS0"
		}},
		{name: "bounds", mutate: func(s *vmspec.Spec) {
			s.VCPUs, s.MemoryMiB = vmspec.MaxVCPUs, vmspec.MaxMemoryMiB
		}},
		{name: "mac upper case", mutate: func(s *vmspec.Spec) { s.MAC = "52:54:00:AB:CD:EF" }},
		{name: "empty", mutate: func(s *vmspec.Spec) { *s = vmspec.Spec{} },
			fields: []string{"name", "vcpus", "memory_mib", "disk_image"}},
		{name: "name upper", mutate: func(s *vmspec.Spec) { s.Name = "Web" }, fields: []string{"name"}, want: "RFC 1123"},
		{name: "name underscore", mutate: func(s *vmspec.Spec) { s.Name = "web_1" }, fields: []string{"name"}},
		{name: "name too long", mutate: func(s *vmspec.Spec) { s.Name = strings.Repeat("a", 64) }, fields: []string{"name"}},
		{name: "vcpus over", mutate: func(s *vmspec.Spec) { s.VCPUs = 65 }, fields: []string{"vcpus"}, want: "1 to 64, not 65"},
		{name: "memory under", mutate: func(s *vmspec.Spec) { s.MemoryMiB = 63 }, fields: []string{"memory_mib"}},
		{name: "memory over", mutate: func(s *vmspec.Spec) { s.MemoryMiB = 1<<20 + 1 }, fields: []string{"memory_mib"}},
		{name: "relative disk", mutate: func(s *vmspec.Spec) { s.DiskImage = "images/a.raw" }, fields: []string{"disk_image"}, want: "absolute"},
		{name: "dotdot disk", mutate: func(s *vmspec.Spec) { s.DiskImage = "/img/../etc/shadow" }, fields: []string{"disk_image"}, want: "'..'"},
		{name: "trailing dotdot", mutate: func(s *vmspec.Spec) { s.DiskImage = "/img/.." }, fields: []string{"disk_image"}, want: "'..'"},
		{name: "unclean disk", mutate: func(s *vmspec.Spec) { s.DiskImage = "/img//a.raw" }, fields: []string{"disk_image"}, want: "clean"},
		{name: "root disk", mutate: func(s *vmspec.Spec) { s.DiskImage = "/" }, fields: []string{"disk_image"}},
		{name: "control char", mutate: func(s *vmspec.Spec) { s.DiskImage = "/img/a\nb.raw" }, fields: []string{"disk_image"}, want: "control"},
		{name: "c1 control char", mutate: func(s *vmspec.Spec) { s.DiskImage = "/img/a\u0085b.raw" }, fields: []string{"disk_image"}, want: "control"},
		{name: "comma", mutate: func(s *vmspec.Spec) { s.DiskImage = "/img/a.raw,readonly=off" }, fields: []string{"disk_image"}, want: "','"},
		{name: "bad utf8", mutate: func(s *vmspec.Spec) { s.DiskImage = "/img/\xff" }, fields: []string{"disk_image"}},
		{name: "long path", mutate: func(s *vmspec.Spec) { s.DiskImage = "/" + strings.Repeat("a", vmspec.MaxPathLen) }, fields: []string{"disk_image"}},
		{name: "relative kernel", mutate: func(s *vmspec.Spec) { s.Kernel = "vmlinux" }, fields: []string{"kernel"}},
		{name: "comma firmware", mutate: func(s *vmspec.Spec) { s.Firmware = "/fw/a,b" }, fields: []string{"firmware"}},
		{name: "initramfs without kernel", mutate: func(s *vmspec.Spec) { s.Initramfs = "/img/initrd" }, fields: []string{"initramfs"}},
		{name: "kernel and firmware", mutate: func(s *vmspec.Spec) { s.Kernel, s.Firmware = "/k", "/f" }, fields: []string{"firmware"}},
		{name: "cmdline without kernel", mutate: func(s *vmspec.Spec) { s.Cmdline = "quiet" }, fields: []string{"cmdline"}},
		{name: "cmdline two lines", mutate: func(s *vmspec.Spec) { s.Kernel, s.Cmdline = "/k", "a\nb" }, fields: []string{"cmdline"}},
		{name: "cmdline long", mutate: func(s *vmspec.Spec) { s.Kernel, s.Cmdline = "/k", strings.Repeat("a", vmspec.MaxCmdlineLen+1) }, fields: []string{"cmdline"}},
		{name: "user data large", mutate: func(s *vmspec.Spec) { s.UserData = strings.Repeat("a", vmspec.MaxUserData+1) }, fields: []string{"cloud_init.user_data"}},
		{name: "mac dashes", mutate: func(s *vmspec.Spec) { s.MAC = "52-54-00-12-34-56" }, fields: []string{"mac"}},
		{name: "mac dots", mutate: func(s *vmspec.Spec) { s.MAC = "5254.0012.3456" }, fields: []string{"mac"}},
		{name: "mac one digit", mutate: func(s *vmspec.Spec) { s.MAC = "52:54:0:12:34:567" }, fields: []string{"mac"}},
		{name: "mac multicast", mutate: func(s *vmspec.Spec) { s.MAC = "01:00:5e:00:00:01" }, fields: []string{"mac"}, want: "multicast"},
		{name: "several", mutate: func(s *vmspec.Spec) { s.VCPUs, s.DiskImage = 0, "x" }, fields: []string{"vcpus", "disk_image"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := valid()
			tt.mutate(&s)
			err := s.Validate()
			if len(tt.fields) == 0 {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, vmspec.ErrInvalid)
			var got []string
			for _, p := range vmspec.Problems(err) {
				got = append(got, p.Field)
				require.True(t, strings.HasPrefix(p.Error(), p.Field+" "), "message names its field: %q", p.Error())
			}
			require.Equal(t, tt.fields, got)
			if tt.want != "" {
				require.Contains(t, err.Error(), tt.want)
			}
		})
	}
}

func TestCanonicalMAC(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"52:54:00:12:34:56", "52:54:00:12:34:56"},
		{"52:54:00:AB:cd:EF", "52:54:00:ab:cd:ef"},
		{"52-54-00-12-34-56", ""},
		{"5254.0012.3456", ""},
		{"52:54:00:12:34:56:78", ""},
		{"52:54:00:12:34", ""},
		{"52:54:00:12:34:5g", ""},
		{"52:54:00:12:3:456", ""},
		{"", ""},
		{"03:00:00:00:00:01", ""},
	}
	for _, tt := range tests {
		got, err := vmspec.CanonicalMAC(tt.in)
		if tt.want == "" {
			var fe *vmspec.FieldError
			require.True(t, errors.As(err, &fe), "%q refused", tt.in)
			require.Equal(t, vmspec.FieldMAC, fe.Field)
			continue
		}
		require.NoError(t, err, tt.in)
		require.Equal(t, tt.want, got)
	}
}
