package client_test

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// database/sql's connection opener lives until the DB is closed.
		goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener"),
		// Idle keep-alive connections of clients closed at cleanup.
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}
