package api

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
)

// DefaultBodyReadTimeout bounds the read of a request body: a client that
// trickles its body is cut after it with 408, well within half a minute.
const DefaultBodyReadTimeout = 20 * time.Second

// ctxKeyBodyTimeout marks a request whose body read hit its deadline.
const ctxKeyBodyTimeout = "nkudo.body_timeout"

// errRequestTimeout answers a request whose body did not arrive in time.
var errRequestTimeout = &Error{Status: http.StatusRequestTimeout, Code: CodeRequestTimeout,
	Message: "the request body did not arrive in time"}

// limitBody caps every request body at MaxBodyBytes and gives its read a
// deadline. A declared length over the cap is refused before reading;
// otherwise the reader fails once the cap is crossed and decoding answers
// 413.
//
// The server sets only a header timeout (a read timeout would also cut
// the long-lived answers: event streams, log and console follows), so
// without this deadline a client could hold a connection and its
// goroutine for ever by sending a body one byte at a time — on
// /v1/enroll, without any credential. The deadline covers the body only:
// it is set when a body is expected and cleared once the body has been
// read to its end, so a stream answering a request is never cut by it.
func (a *API) limitBody(c *gin.Context) {
	if c.Request.ContentLength > a.maxBody {
		a.writeError(c, errBodyTooLarge)
		return
	}
	if c.Request.Body != nil && c.Request.Body != http.NoBody {
		var body io.ReadCloser = http.MaxBytesReader(c.Writer, c.Request.Body, a.maxBody)
		if a.bodyTimeout > 0 && c.Request.Header.Get("Upgrade") == "" {
			rc := http.NewResponseController(c.Writer)
			// ErrNotSupported (a test recorder) leaves the body unbounded
			// in time, as it was.
			if rc.SetReadDeadline(time.Now().Add(a.bodyTimeout)) == nil {
				body = &deadlineBody{ReadCloser: body, rc: rc, timedOut: func() {
					c.Set(ctxKeyBodyTimeout, true)
					a.metrics.bodyTimeouts.Inc()
				}}
			}
		}
		c.Request.Body = body
	}
	c.Next()
}

// deadlineBody clears the connection's read deadline once the body is read
// to its end, and reports a read that hit the deadline.
type deadlineBody struct {
	io.ReadCloser
	rc       *http.ResponseController
	timedOut func()
	once     sync.Once
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	switch {
	case err == io.EOF:
		b.once.Do(func() { _ = b.rc.SetReadDeadline(time.Time{}) })
	case err != nil && isTimeout(err):
		b.once.Do(b.timedOut)
	}
	return n, err
}

func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
