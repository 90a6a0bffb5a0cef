package api

import (
	"unicode"
	"unicode/utf8"
)

// Name bounds shared by tenants, sites and API keys.
const (
	maxNameLen        = 100
	maxDescriptionLen = 1000
	maxGroups         = 50
)

// checkName accepts 1..maxNameLen characters of printable text without
// leading or trailing spaces, so names render safely in the TUI and logs.
func checkName(field, s string) error {
	if s == "" {
		return invalidArgument("%s is required", field)
	}
	if !utf8.ValidString(s) || utf8.RuneCountInString(s) > maxNameLen {
		return invalidArgument("%s must be at most %d characters of valid UTF-8", field, maxNameLen)
	}
	if s[0] == ' ' || s[len(s)-1] == ' ' {
		return invalidArgument("%s must not start or end with a space", field)
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return invalidArgument("%s must not contain control characters", field)
		}
	}
	return nil
}

func checkDescription(s string) error {
	if !utf8.ValidString(s) || utf8.RuneCountInString(s) > maxDescriptionLen {
		return invalidArgument("description must be at most %d characters of valid UTF-8", maxDescriptionLen)
	}
	for _, r := range s {
		if unicode.IsControl(r) && r != '\n' && r != '\t' {
			return invalidArgument("description must not contain control characters")
		}
	}
	return nil
}

func checkGroups(groups []string) error {
	if len(groups) > maxGroups {
		return invalidArgument("netbird.groups holds at most %d groups", maxGroups)
	}
	seen := make(map[string]bool, len(groups))
	for _, g := range groups {
		if err := checkName("netbird.groups entry", g); err != nil {
			return err
		}
		if seen[g] {
			return invalidArgument("netbird.groups lists %q twice", g)
		}
		if g == netbirdGroupAll {
			return invalidArgument("netbird.groups must not list %q: NetBird puts every peer in it and refuses it in a setup key's groups", g)
		}
		seen[g] = true
	}
	return nil
}
