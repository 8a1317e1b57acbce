package wan

import (
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// chunkSize is the most bytes one chunk carries through a delay line.
const chunkSize = 16 << 10

// chunk is bytes in flight, or the error that ended the stream, with the
// time it reaches the other end.
type chunk struct {
	data []byte
	err  error
	at   time.Time
}

// line is one direction of a connection: token buckets pace the bytes onto
// it (the rate), then each chunk waits in a queue until its arrival time plus
// the one-way delay. Chunks are in flight together, so the delay adds to each
// byte's arrival once and never lowers the rate.
type line struct {
	delay    time.Duration
	limiters []*rate.Limiter
	queue    chan chunk
}

func newLine(delay time.Duration, rateLimit Bitrate, host *rate.Limiter) *line {
	l := &line{delay: delay}
	for _, lim := range []*rate.Limiter{newLimiter(rateLimit), host} {
		if lim != nil {
			l.limiters = append(l.limiters, lim)
		}
	}
	// Room for what the link holds in flight (rate x delay) and then some,
	// so the queue never becomes the bottleneck.
	inFlight := int(rateLimit.bytesPerSecond() * delay.Seconds())
	l.queue = make(chan chunk, 64+inFlight/chunkSize)
	return l
}

// pace waits until every bucket has n bytes for the link, and returns when
// the chunk will arrive at the other end.
func (l *line) pace(n int) time.Time {
	now := time.Now()
	var wait time.Duration
	for _, lim := range l.limiters {
		wait = max(wait, lim.ReserveN(now, n).DelayFrom(now))
	}
	time.Sleep(wait)
	return time.Now().Add(l.delay)
}

// conn is the server's side of a connection behind the WAN. Bytes from the
// client reach Read late by the one-way delay, bytes given to Write reach
// the client late by the same, each direction at the profile's rate.
type conn struct {
	net.Conn
	in, out *line
	// firstByte is the earliest a client's byte can arrive: over a real
	// network the client sends only after TCP's handshake took a round trip.
	firstByte time.Time

	head    *chunk // taken from in.queue, not yet released or read
	pending []byte // released to Read, not yet copied out
	readErr error

	deadlineMu      sync.Mutex
	readDeadline    time.Time
	deadlineChanged chan struct{} // closed and replaced when readDeadline changes

	writeMu  sync.Mutex
	writeErr error

	closeOnce sync.Once
	closed    chan struct{} // Close was called
}

func newConn(raw net.Conn, p Profile, hostIn, hostOut *rate.Limiter) *conn {
	oneWay := p.RoundTrip / 2
	c := &conn{
		Conn:            raw,
		in:              newLine(oneWay, p.Rate, hostIn),
		out:             newLine(oneWay, p.Rate, hostOut),
		firstByte:       time.Now().Add(p.RoundTrip + oneWay),
		deadlineChanged: make(chan struct{}),
		closed:          make(chan struct{}),
	}
	go c.carryIn()
	go c.carryOut()
	return c
}

// carryIn moves the client's bytes from the socket onto the inbound line.
// A full line stops it reading, so the client feels backpressure as over a
// real link.
func (c *conn) carryIn() {
	for {
		buf := make([]byte, chunkSize)
		n, err := c.Conn.Read(buf)
		if n > 0 {
			at := c.in.pace(n)
			if at.Before(c.firstByte) {
				at = c.firstByte
			}
			if !c.send(c.in, chunk{data: buf[:n], at: at}) {
				return
			}
		}
		if err != nil {
			c.send(c.in, chunk{err: err, at: time.Now().Add(c.in.delay)})
			return
		}
	}
}

// carryOut writes the outbound line's chunks to the socket as they arrive;
// once the connection is closed it delivers what is still in flight, then
// closes the socket.
func (c *conn) carryOut() {
	for {
		select {
		case ch := <-c.out.queue:
			c.deliver(ch)
		case <-c.closed:
			// A client that stopped reading must not keep the socket open.
			_ = c.Conn.SetWriteDeadline(time.Now().Add(c.out.delay + time.Minute))
			for {
				select {
				case ch := <-c.out.queue:
					c.deliver(ch)
				default:
					_ = c.Conn.Close()
					return
				}
			}
		}
	}
}

// deliver writes ch to the socket at its arrival time, unless an earlier
// write failed (then Write reports that error).
func (c *conn) deliver(ch chunk) {
	if c.failedWrite() != nil {
		return
	}
	time.Sleep(time.Until(ch.at))
	if _, err := c.Conn.Write(ch.data); err != nil {
		c.writeMu.Lock()
		c.writeErr = err
		c.writeMu.Unlock()
	}
}

func (c *conn) failedWrite() error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	return c.writeErr
}

// send queues ch on l unless the connection closes first.
func (c *conn) send(l *line, ch chunk) bool {
	select {
	case l.queue <- ch:
		return true
	case <-c.closed:
		return false
	}
}

func (c *conn) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		if err := c.failedWrite(); err != nil {
			return written, err
		}
		n := min(len(p), chunkSize)
		at := c.out.pace(n)
		if !c.send(c.out, chunk{data: append([]byte(nil), p[:n]...), at: at}) {
			return written, net.ErrClosed
		}
		written += n
		p = p[n:]
	}
	return written, nil
}

func (c *conn) Read(p []byte) (int, error) {
	if len(c.pending) == 0 {
		if c.readErr != nil {
			return 0, c.readErr
		}
		ch, err := c.nextIn()
		if err != nil {
			return 0, err
		}
		if ch.err != nil {
			c.readErr = ch.err
			return 0, ch.err
		}
		c.pending = ch.data
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

// nextIn returns the next inbound chunk once it has arrived, or a timeout
// when the read deadline passes first (the chunk stays for the next Read:
// net/http interrupts its background read that way).
func (c *conn) nextIn() (chunk, error) {
	for c.head == nil {
		dl, changed := c.deadline()
		timeout, stop := deadlineTimer(dl)
		select {
		case ch := <-c.in.queue:
			c.head = &ch
		case <-timeout:
			stop()
			return chunk{}, os.ErrDeadlineExceeded
		case <-changed:
		case <-c.closed:
			stop()
			return chunk{}, net.ErrClosed
		}
		stop()
	}
	for {
		dl, changed := c.deadline()
		if !dl.IsZero() && !dl.After(time.Now()) {
			return chunk{}, os.ErrDeadlineExceeded
		}
		wait := time.Until(c.head.at)
		if wait <= 0 {
			ch := *c.head
			c.head = nil
			return ch, nil
		}
		if !dl.IsZero() {
			wait = min(wait, time.Until(dl))
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-changed:
		case <-c.closed:
			t.Stop()
			return chunk{}, net.ErrClosed
		}
		t.Stop()
	}
}

// deadlineTimer fires at dl; a zero dl never fires.
func deadlineTimer(dl time.Time) (<-chan time.Time, func()) {
	if dl.IsZero() {
		return nil, func() {}
	}
	t := time.NewTimer(time.Until(dl))
	return t.C, func() { t.Stop() }
}

func (c *conn) deadline() (time.Time, <-chan struct{}) {
	c.deadlineMu.Lock()
	defer c.deadlineMu.Unlock()
	return c.readDeadline, c.deadlineChanged
}

// SetReadDeadline is kept by the conn itself: the socket is read ahead by
// carryIn, so the deadline applies to the bytes' arrival on the line.
func (c *conn) SetReadDeadline(t time.Time) error {
	c.deadlineMu.Lock()
	defer c.deadlineMu.Unlock()
	c.readDeadline = t
	close(c.deadlineChanged)
	c.deadlineChanged = make(chan struct{})
	return nil
}

// SetWriteDeadline does not reach the socket: carryOut writes each chunk
// after its delay, when the caller's Write has long returned, and a deadline
// meant for that Write would cut the chunks still in flight (crypto/tls sets
// one of now right after queueing its close_notify, which lost every answer
// sent before a TLS connection closed).
func (c *conn) SetWriteDeadline(time.Time) error { return nil }

func (c *conn) SetDeadline(t time.Time) error { return c.SetReadDeadline(t) }

// Close stops reading at once; what was written is still delivered after
// its delay, then the socket closes.
func (c *conn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return nil
}
