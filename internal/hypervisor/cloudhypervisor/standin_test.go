package cloudhypervisor

// The stand-in VMM lives in the importable test-support package standin,
// so end-to-end tests can run it under a real nkudo-agent too; these names
// keep this package's tests reading as before.

import "github.com/kubedoio/n-kudo/internal/hypervisor/cloudhypervisor/standin"

type (
	standinConfig = standin.Config
	standinCall   = standin.Call
)

const (
	standinConfigFile  = standin.ConfigFile
	standinCallsFile   = standin.CallsFile
	standinPIDsFile    = standin.PIDsFile
	standinUnsupported = standin.Unsupported
)

func standinMain(args []string) int { return standin.Main(args) }
