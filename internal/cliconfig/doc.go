// Package cliconfig holds the nkudo console's contexts, kubectl style:
// named sets of server URL, CA, API key and tenant in one YAML file
// (~/.config/nkudo/config.yaml), one of them current.
//
// The file holds API keys, so it is always written with mode 0600 and
// replaced atomically (a crash never leaves half a file), and a file
// others can read is refused on load, as ssh does with private keys.
package cliconfig
