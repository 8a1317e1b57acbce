// Package wan puts a wide-area network between the local environment's
// servers and their clients: a round trip and a rate per connection (and a
// cap per endpoint), so the provider and its peers can be measured over
// loopback as they would run between a CI runner, ECR and GitLab.
package wan

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Bitrate is a rate in bits per second; 0 means unlimited.
type Bitrate int64

// Profile is what a connection to any endpoint goes through. The zero value
// is plain loopback.
type Profile struct {
	// RoundTrip is the time a byte takes there and back (what ping shows):
	// each direction is delayed by half of it. A new connection also pays
	// one round trip for TCP's handshake before its first byte arrives.
	RoundTrip time.Duration
	// Rate is each connection's bandwidth, in each direction.
	Rate Bitrate
	// HostRate caps the bandwidth of all connections to one endpoint
	// together, in each direction (a NIC, a NAT gateway); 0 means none.
	HostRate Bitrate
}

// Named is a profile a team can pick by name.
type Named struct {
	Name, About string
	Profile     Profile
}

// Profiles are typical placements of the CI runner relative to ECR and
// GitLab, from public latency tables (AWS inter-region round trips,
// GitLab.com's shared runners in GCP us-east1).
var Profiles = []Named{
	{"same-region", "runner, ECR and GitLab in one cloud region (~2 ms)", Profile{RoundTrip: 2 * time.Millisecond, Rate: 1_000_000_000}},
	{"cross-region", "ECR in another region or cloud (~40-80 ms)", Profile{RoundTrip: 40 * time.Millisecond, Rate: 200_000_000}},
	{"gitlab-com", "GitLab.com reached from a shared runner (~20-40 ms)", Profile{RoundTrip: 30 * time.Millisecond, Rate: 200_000_000}},
}

// Off reports whether p shapes nothing.
func (p Profile) Off() bool { return p == Profile{} }

// Parse reads a profile name from Profiles, "off" (or ""), or
// "ROUNDTRIP,RATE[,HOSTRATE]" such as "40ms,200Mbit" or "80ms,100Mbit,1Gbit".
func Parse(s string) (Profile, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "off" {
		return Profile{}, nil
	}
	for _, n := range Profiles {
		if n.Name == s {
			return n.Profile, nil
		}
	}
	parts := strings.Split(s, ",")
	if len(parts) < 2 || len(parts) > 3 {
		return Profile{}, fmt.Errorf("WAN profile %q: want a name (%s) or ROUNDTRIP,RATE[,HOSTRATE] such as 40ms,200Mbit", s, profileNames())
	}
	var p Profile
	var err error
	if p.RoundTrip, err = time.ParseDuration(strings.TrimSpace(parts[0])); err != nil || p.RoundTrip < 0 {
		return Profile{}, fmt.Errorf("WAN profile %q: round trip %q is not a duration such as 40ms", s, parts[0])
	}
	if p.Rate, err = ParseBitrate(parts[1]); err != nil {
		return Profile{}, fmt.Errorf("WAN profile %q: %w", s, err)
	}
	if len(parts) == 3 {
		if p.HostRate, err = ParseBitrate(parts[2]); err != nil {
			return Profile{}, fmt.Errorf("WAN profile %q: %w", s, err)
		}
	}
	return p, nil
}

func profileNames() string {
	names := make([]string, len(Profiles))
	for i, n := range Profiles {
		names[i] = n.Name
	}
	return strings.Join(names, ", ")
}

var bitUnits = []struct {
	name  string
	scale int64
}{{"Gbit", 1e9}, {"Mbit", 1e6}, {"kbit", 1e3}, {"bit", 1}}

// ParseBitrate reads "200Mbit", "1Gbit", "512kbit" (decimal units, as
// network links are sold) or "0" for unlimited.
func ParseBitrate(s string) (Bitrate, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	t = strings.TrimSuffix(t, "/s")
	var scale int64 = 1
	for _, u := range bitUnits {
		if suffix := strings.ToLower(u.name); strings.HasSuffix(t, suffix) {
			t, scale = strings.TrimSuffix(t, suffix), u.scale
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("rate %q is not a bit rate such as 200Mbit", s)
	}
	return Bitrate(v * float64(scale)), nil
}

// String renders b the way ParseBitrate reads it.
func (b Bitrate) String() string {
	if b <= 0 {
		return "0"
	}
	for _, u := range bitUnits {
		if int64(b)%u.scale == 0 {
			return fmt.Sprintf("%d%s", int64(b)/u.scale, u.name)
		}
	}
	return fmt.Sprintf("%dbit", int64(b))
}

// String renders p the way Parse reads it.
func (p Profile) String() string {
	if p.Off() {
		return "off"
	}
	s := p.RoundTrip.String() + "," + p.Rate.String()
	if p.HostRate > 0 {
		s += "," + p.HostRate.String()
	}
	return s
}

// bytesPerSecond is b in bytes per second.
func (b Bitrate) bytesPerSecond() float64 { return float64(b) / 8 }
