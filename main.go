// Command terraform-provider-imagesync serves the imagesync Terraform provider.
package main

import (
	"context"
	"flag"
	"log"
	"os"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"

	"github.com/imagesync/terraform-provider-imagesync/internal/orphan"
	"github.com/imagesync/terraform-provider-imagesync/internal/provider"
)

// version is set at release time with -ldflags "-X main.version=...".
var version = "dev"

// startProfiling starts what a profiling build records and returns what
// ends it (see main_pprof.go); nothing in a normal build.
var startProfiling = func() (stop func()) { return func() {} }

func main() {
	var debug bool
	flag.BoolVar(&debug, "debug", false, "run the provider with support for debuggers like delve")
	flag.Parse()
	if !debug { // with -debug the provider runs on its own terminal, not under Terraform
		provider.SilenceUnreadLogs(os.Getenv, os.Setenv)
		orphan.ExitWhenOrphaned(context.Background())
	}

	stopProfiling := startProfiling()
	err := providerserver.Serve(context.Background(), provider.New(version), providerserver.ServeOpts{
		Address: "registry.terraform.io/imagesync/imagesync",
		Debug:   debug,
	})
	stopProfiling()
	if err != nil {
		log.Fatal(err.Error())
	}
}
