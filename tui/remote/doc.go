// Package remote is the console's data.Source over the n-kudo API client
// (internal/client): it converts the API's types to the console's view
// models, maps client errors to data's sentinels, and turns the client's
// self-resuming event stream into events plus connection-state changes,
// which it learns from the client's OnStreamState hook. VM consoles arrive
// as raw byte chunks; ConsoleLines cuts them into printable lines.
package remote
