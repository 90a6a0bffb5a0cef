// Package form is the VM create form: one text input per field, validation
// that names the field at fault, and host completion from the fleet.
package form
