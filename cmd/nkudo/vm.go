package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/kubedoio/n-kudo/internal/client"
	"github.com/kubedoio/n-kudo/internal/vmspec"
)

func (a *app) vmCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "vm",
		Short: "Create, start, stop, reboot and delete microVMs",
		Long: `vm changes microVMs. Every change becomes a plan the host's agent runs;
--wait follows the plan to its end and exits 6 if it failed.
A VM is named by its id or its unique name.`,
		Args: exactArgs(0, "a subcommand: create, start, stop, reboot or delete"),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(a.vmCreateCmd())
	for _, action := range []string{"start", "stop", "reboot"} {
		cmd.AddCommand(a.vmActionCmd(action))
	}
	cmd.AddCommand(a.vmDeleteCmd())
	return cmd
}

func (a *app) vmCreateCmd() *cobra.Command {
	var (
		name, site, host, diskImage, kernel, cmdline, userDataFile, output string
		vcpus, memoryMiB                                                   int
		noStart, wait                                                      bool
		timeout                                                            time.Duration
	)
	cmd := &cobra.Command{
		Use:   "create --name N --site S --disk-image PATH",
		Short: "Create a microVM (booted unless --no-start)",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" || site == "" || diskImage == "" {
				return usagef("--name, --site and --disk-image are required")
			}
			if err := checkSpec(vmspec.Spec{Name: name, VCPUs: vcpus, MemoryMiB: memoryMiB, DiskImage: diskImage, Kernel: kernel, Cmdline: cmdline}); err != nil {
				return err
			}
			if output != "text" && output != "json" {
				return usagef("-o %q: want text or json", output)
			}
			req := client.CreateVMRequest{Name: name, VCPUs: vcpus, MemoryMiB: memoryMiB, DiskImage: diskImage, Kernel: kernel, Cmdline: cmdline}
			if userDataFile != "" {
				data, err := os.ReadFile(userDataFile)
				if err != nil {
					return fmt.Errorf("reading --user-data-file: %w", err)
				}
				req.CloudInit = &client.CloudInit{UserData: string(data)}
			}
			if noStart {
				start := false
				req.Start = &start
			}
			c, err := a.client(writeAccess)
			if err != nil {
				return err
			}
			defer c.Close()
			ctx := cmd.Context()
			s, err := resolveSite(ctx, c, site)
			if err != nil {
				return err
			}
			req.SiteID = s.ID
			if host != "" {
				h, err := resolveHost(ctx, c, s.ID, host)
				if err != nil {
					return err
				}
				req.HostID = &h.ID
			}
			vm, err := c.CreateVM(ctx, req)
			if err != nil {
				return err
			}
			if output != "json" {
				fmt.Fprintf(cmd.OutOrStdout(), "vm %s created: %s\n", vm.Name, vm.ID)
			}
			if !wait {
				if output == "json" {
					return printJSON(cmd.OutOrStdout(), vm)
				}
				return nil
			}
			plan := vm.Plan
			if plan == nil {
				p, err := findPlanForVM(ctx, c, vm.VM)
				if err != nil {
					return err
				}
				plan = &p
			}
			werr := a.waitPlan(ctx, c, plan.ID, timeout)
			if output != "json" {
				return werr
			}
			return errors.Join(werr, printFinalVM(ctx, c, cmd.OutOrStdout(), vm.VM))
		},
	}
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "VM name, unique in the tenant")
	f.StringVar(&site, "site", "", "site (id or name)")
	f.StringVar(&host, "host", "", "host (id or hostname); the server picks one when empty")
	f.IntVar(&vcpus, "vcpus", 1, "virtual CPUs")
	f.IntVar(&memoryMiB, "memory-mib", 512, "memory in MiB")
	f.StringVar(&diskImage, "disk-image", "", "root disk image path on the host")
	f.StringVar(&kernel, "kernel", "", "kernel path on the host (default: the image's firmware)")
	f.StringVar(&cmdline, "cmdline", "", "kernel command line")
	f.StringVar(&userDataFile, "user-data-file", "", "cloud-init user data to seed the VM with")
	f.BoolVar(&noStart, "no-start", false, "create the VM stopped")
	f.BoolVar(&wait, "wait", false, "follow the plan to its end (exit 6 if it fails)")
	f.DurationVar(&timeout, "timeout", 10*time.Minute, "give up waiting after this long")
	f.StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

func (a *app) vmActionCmd(action string) *cobra.Command {
	var (
		wait    bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   action + " VM",
		Short: strings.ToUpper(action[:1]) + action[1:] + " a microVM",
		Args:  exactArgs(1, "a VM id or name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(writeAccess)
			if err != nil {
				return err
			}
			defer c.Close()
			ctx := cmd.Context()
			vm, err := resolveVM(ctx, c, args[0])
			if err != nil {
				return err
			}
			call := map[string]func(context.Context, uuid.UUID, ...client.CallOption) (client.Plan, error){
				"start": c.StartVM, "stop": c.StopVM, "reboot": c.RebootVM,
			}[action]
			plan, err := call(ctx, vm.ID)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "vm %s: %s requested (plan %s)\n", vm.Name, action, plan.ID)
			if !wait {
				return nil
			}
			return a.waitPlan(ctx, c, plan.ID, timeout)
		},
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "follow the plan to its end (exit 6 if it fails)")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "give up waiting after this long")
	return cmd
}

func (a *app) vmDeleteCmd() *cobra.Command {
	var (
		wait, yes bool
		timeout   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "delete VM",
		Short: "Delete a microVM (asks first unless --yes)",
		Long: `delete removes a microVM and its disk on the host. It asks for
confirmation on a terminal; when stdin is not a terminal (a script), it
requires --yes instead of guessing.`,
		Args: exactArgs(1, "a VM id or name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !yes && !a.isTerminal(a.stdin) {
				return usagef("refusing to delete without --yes: stdin is not a terminal")
			}
			c, err := a.client(writeAccess)
			if err != nil {
				return err
			}
			defer c.Close()
			ctx := cmd.Context()
			vm, err := resolveVM(ctx, c, args[0])
			if err != nil {
				return err
			}
			if !yes {
				ok, err := confirm(a.stdin, cmd.ErrOrStderr(), fmt.Sprintf("Delete vm %s (%s)? This destroys its disk. [y/N] ", vm.Name, vm.ID))
				if err != nil {
					return err
				}
				if !ok {
					return fmt.Errorf("deleting vm %s: %w", vm.Name, errAborted)
				}
			}
			plan, err := c.DeleteVM(ctx, vm.ID)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "vm %s: delete requested (plan %s)\n", vm.Name, plan.ID)
			if !wait {
				return nil
			}
			return a.waitPlan(ctx, c, plan.ID, timeout)
		},
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	cmd.Flags().BoolVar(&wait, "wait", false, "follow the plan to its end (exit 6 if it fails)")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "give up waiting after this long")
	return cmd
}

// confirm asks a yes/no question; only an explicit yes counts.
func confirm(in io.Reader, out io.Writer, question string) (bool, error) {
	fmt.Fprint(out, question)
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && err != io.EOF {
		return false, fmt.Errorf("reading the answer: %w", err)
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true, nil
	}
	return false, nil
}

// findPlanForVM finds the newest plan acting on vm, for servers whose
// create answer does not carry the plan.
func findPlanForVM(ctx context.Context, c *client.Client, vm client.VM) (client.Plan, error) {
	var found *client.Plan
	for p, err := range c.AllPlans(ctx, client.Filter{SiteID: vm.SiteID}) {
		if err != nil {
			return client.Plan{}, err
		}
		for _, act := range p.Actions {
			if act.VMID != nil && *act.VMID == vm.ID {
				found = &p // plans list oldest first: the last match is the newest
				break
			}
		}
	}
	if found == nil {
		return client.Plan{}, fmt.Errorf("%w: no plan acts on vm %s", errNotFound, vm.ID)
	}
	return *found, nil
}

// waitPlan re-reads a plan until it is terminal, printing each action's
// status changes to stderr so stdout stays for results.
func (a *app) waitPlan(ctx context.Context, c *client.Client, id uuid.UUID, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	seen := map[uuid.UUID]string{}
	tick := time.NewTicker(a.pollEvery)
	defer tick.Stop()
	for {
		p, err := c.GetPlan(ctx, id)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("waiting for plan %s: %w", id, ctx.Err())
			}
			return err
		}
		for _, act := range p.Actions {
			if seen[act.ID] != act.Status {
				seen[act.ID] = act.Status
				fmt.Fprintf(a.stderr, "  %s %s (execution %s)\n", act.Type, act.Status, act.ExecutionID)
			}
		}
		if client.Terminal(p.Status) {
			if p.Status == client.StatusSucceeded {
				fmt.Fprintf(a.stderr, "plan %s succeeded\n", p.ID)
				return nil
			}
			return planFailure(p)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for plan %s: %w", id, ctx.Err())
		case <-tick.C:
		}
	}
}

func planFailure(p client.Plan) error {
	for _, act := range p.Actions {
		if act.Status == client.StatusFailed {
			return fmt.Errorf("%w: plan %s: %s: %s (see 'nkudo logs %s')", errPlanFailed, p.ID, act.Type, dash(act.Error), act.ExecutionID)
		}
	}
	return fmt.Errorf("%w: plan %s ended %s", errPlanFailed, p.ID, p.Status)
}

// printFinalVM prints the VM as a --wait left it (not as it was before),
// for -o json.
func printFinalVM(ctx context.Context, c *client.Client, w io.Writer, vm client.VM) error {
	final, err := c.GetVM(ctx, vm.ID)
	if err != nil {
		return fmt.Errorf("reading vm %s after the wait: %w", vm.Name, err)
	}
	return printJSON(w, final)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// checkSpec applies the server's own rule (internal/vmspec), so a VM
// refused for its shape is refused before any request, with the same words.
func checkSpec(s vmspec.Spec) error {
	if err := s.Validate(); err != nil {
		return usagef("%s", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	return nil
}
