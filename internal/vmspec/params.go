package vmspec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/uuid"
)

// CloudInit is the NoCloud seed given to the guest.
type CloudInit struct {
	UserData string `json:"user_data,omitempty"`
}

// CreateParams is the params object of a MicroVMCreate action on the agent
// channel: what the server sends and what the agent's executor reads.
type CreateParams struct {
	// ID is the VM's id; when set it must be the action's vm_id.
	ID        uuid.UUID  `json:"id"`
	Name      string     `json:"name"`
	VCPUs     int        `json:"vcpus"`
	MemoryMiB int        `json:"memory_mib"`
	Kernel    string     `json:"kernel,omitempty"`
	Cmdline   string     `json:"cmdline,omitempty"`
	DiskImage string     `json:"disk_image"`
	CloudInit *CloudInit `json:"cloud_init,omitempty"`
	// MAC is the guest NIC's address; empty lets the agent derive one.
	MAC string `json:"mac,omitempty"`
	// Start boots the VM after creating it; absent means true.
	Start *bool `json:"start,omitempty"`
}

// Spec is the VM spec the params carry, for Validate.
func (p CreateParams) Spec() Spec {
	s := Spec{
		Name: p.Name, VCPUs: p.VCPUs, MemoryMiB: p.MemoryMiB, Kernel: p.Kernel, Cmdline: p.Cmdline,
		DiskImage: p.DiskImage, MAC: p.MAC,
	}
	if p.CloudInit != nil {
		s.UserData = p.CloudInit.UserData
	}
	return s
}

// ErrBadParams: MicroVMCreate params are not a JSON object of the
// CreateParams fields.
var ErrBadParams = errors.New("bad MicroVMCreate params")

// DecodeCreateParams reads MicroVMCreate params strictly: one JSON object
// with only the CreateParams fields, so a misspelt field ("diskimage") is
// refused instead of silently dropped.
func DecodeCreateParams(raw []byte) (CreateParams, error) {
	var p CreateParams
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return CreateParams{}, fmt.Errorf("%w: %w", ErrBadParams, err)
	}
	if dec.More() {
		return CreateParams{}, fmt.Errorf("%w: more than one JSON value", ErrBadParams)
	}
	return p, nil
}
