package wan

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Shaper holds the profile of one environment. Every endpoint's listener is
// wrapped by Listen; Set changes the profile for connections accepted from
// then on (so an environment can seed its images at loopback speed and then
// put the WAN in front of the tools it measures).
type Shaper struct {
	profile atomic.Pointer[Profile]
}

// NewShaper returns a Shaper with profile p (the zero Profile shapes nothing).
func NewShaper(p Profile) *Shaper {
	s := &Shaper{}
	s.Set(p)
	return s
}

// Set changes the profile of connections accepted from now on.
func (s *Shaper) Set(p Profile) {
	if s != nil {
		s.profile.Store(&p)
	}
}

// Profile is the profile new connections get.
func (s *Shaper) Profile() Profile {
	if s == nil {
		return Profile{}
	}
	return *s.profile.Load()
}

// Listen wraps l, one endpoint: its connections go through the shaper's
// profile, and share the profile's HostRate cap. A nil Shaper returns l.
func (s *Shaper) Listen(l net.Listener) net.Listener {
	if s == nil {
		return l
	}
	return &listener{Listener: l, shaper: s}
}

// listener is one endpoint behind the WAN.
type listener struct {
	net.Listener
	shaper *Shaper

	mu      sync.Mutex
	hostFor Profile       // the profile hostIn and hostOut were made for
	hostIn  *rate.Limiter // all connections' bytes from their clients
	hostOut *rate.Limiter // all connections' bytes to their clients
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	p := l.shaper.Profile()
	if p.Off() {
		return c, nil
	}
	in, out := l.hostLimiters(p)
	return newConn(c, p, in, out), nil
}

// hostLimiters are the endpoint's shared caps for p, made again when the
// profile changed.
func (l *listener) hostLimiters(p Profile) (in, out *rate.Limiter) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.hostFor != p || l.hostIn == nil {
		l.hostFor = p
		l.hostIn, l.hostOut = newLimiter(p.HostRate), newLimiter(p.HostRate)
	}
	return l.hostIn, l.hostOut
}

// smoothing is how far a token bucket may run ahead: enough to absorb a late
// wake-up on a loaded machine without losing rate, small enough that a
// transfer's first chunks are not noticeably faster than the rest.
const smoothing = 10 * time.Millisecond

// newLimiter is a token bucket of b (in bytes), or nil when b is unlimited.
func newLimiter(b Bitrate) *rate.Limiter {
	if b <= 0 {
		return nil
	}
	perSecond := b.bytesPerSecond()
	burst := max(chunkSize, int(perSecond*smoothing.Seconds()))
	lim := rate.NewLimiter(rate.Limit(perSecond), burst)
	lim.AllowN(time.Now(), burst) // start empty: no free burst for a new connection
	return lim
}
