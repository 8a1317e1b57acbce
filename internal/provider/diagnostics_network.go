package provider

import (
	"fmt"
	"net/http"

	"github.com/imagesync/terraform-provider-imagesync/internal/mirror"
	"github.com/imagesync/terraform-provider-imagesync/internal/network"
)

// sideSettings names, per side, the settings a connection failure points to.
type sideSettings struct {
	name      string // how the side is named to the user
	addresses string // where its host names come from
	caFile    string // how to trust a CA for it
	lockedOut string // what a locked-down network must let through
}

var networkSides = map[mirror.Side]sideSettings{
	mirror.SideECR: {
		name:      "ECR (the ECR API, the ECR registry, or Amazon S3 where ECR sends layer downloads)",
		addresses: "ecr.region, ecr.endpoint (AWS_ENDPOINT_URL_ECR) and ecr.registry_endpoint (IMAGESYNC_ECR_REGISTRY_ENDPOINT)",
		caFile:    "set ecr.custom_ca_bundle (or AWS_CA_BUNDLE) to a PEM file that holds it",
		lockedOut: "api.ecr.<region>.amazonaws.com, <account>.dkr.ecr.<region>.amazonaws.com and the layers' S3 bucket prod-<region>-starport-layer-bucket.s3.<region>.amazonaws.com",
	},
	mirror.SideGitLab: {
		name:      "GitLab (the GitLab API or its container registry)",
		addresses: "gitlab.base_url (GITLAB_BASE_URL, CI_SERVER_URL) and gitlab.registry_url",
		caFile:    "set gitlab.cacert_file to a PEM file that holds it (in GitLab CI, CI_SERVER_TLS_CA_FILE is trusted when the runner sets it)",
		lockedOut: "the GitLab host and its registry host",
	},
}

// networkHint says which connection failed, what happened and what fixes
// it; ok is false when err is not a connection failure.
func networkHint(side mirror.Side, err error) (hint string, ok bool) {
	f, ok := network.Explain(err)
	s, known := networkSides[side]
	if !ok || !known {
		return "", false
	}
	return fmt.Sprintf("A connection to %s failed: %s. %s", s.name, f.What, networkFix(s, f)), true
}

func networkFix(s sideSettings, f network.Failure) string {
	switch f.Kind {
	case network.KindUnknownAuthority, network.KindCertificate:
		return "Trust the CA that issued the certificate: " + s.caFile + ", or add it to the system's trust store " +
			"(SSL_CERT_FILE, SSL_CERT_DIR). Behind a TLS-inspecting proxy, that is the proxy's CA."
	case network.KindHostname:
		return "Use the host name the certificate was issued for in " + s.addresses + ", or have the certificate reissued for this name."
	case network.KindExpired:
		return "Have the server's certificate renewed, and check this machine's clock."
	case network.KindPlainHTTP:
		return "The provider never falls back to plain HTTP by itself: give an http:// URL in " + s.addresses +
			" if plain HTTP is meant (local testing only), or enable TLS on the server."
	case network.KindProxyRefused:
		return proxyFix(s, f)
	case network.KindProxyUnreachable:
		return "Check the proxy's address in HTTPS_PROXY or HTTP_PROXY, or list " + f.Host + " in NO_PROXY if it is reachable directly."
	case network.KindDNS:
		return "Check the host name in " + s.addresses + ", and this machine's DNS. A locked-down network must resolve and let through " + s.lockedOut + "."
	case network.KindRefused, network.KindConnectTimeout:
		return "Check the address in " + s.addresses + ", and that firewalls let the connection through (or set HTTPS_PROXY where " +
			"the network requires a proxy). A locked-down network must let through " + s.lockedOut + "."
	case network.KindStall:
		return "The connection stopped making progress: a NAT gateway, firewall or proxy that dropped an idle flow, or an " +
			"overloaded server. Within its retries the provider resumed downloads from the last byte received and sent " +
			"uploads again; a host that stalled twice in one resource's copy is not asked again by it. Apply again: only " +
			"what is still missing is copied. Raise idle_timeout if the server is only slow."
	}
	return "Something on the way ended the connection (a proxy, a firewall or a load balancer). Apply again: only what is still missing is copied."
}

func proxyFix(s sideSettings, f network.Failure) string {
	if f.Status == http.StatusProxyAuthRequired {
		return "The proxy asks for credentials: give them in the proxy URL (HTTPS_PROXY=http://user:password@proxy:port), " +
			"or have " + f.Host + " allowed without them."
	}
	return "The proxy's policy does not allow " + f.Host + ": have it allowed, or list it in NO_PROXY if it is reachable " +
		"directly. A locked-down network must let through " + s.lockedOut + "."
}
