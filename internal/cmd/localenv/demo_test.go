package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/imagesync/terraform-provider-imagesync/internal/localenv"
)

// TestDemo runs `make demo` as a test (with the CLI TF_ACC_TERRAFORM_PATH names): examples/demo with for_each over the
// data source, through the real terraform CLI. demo itself fails unless the
// rerun plan is empty (exit 0) and the moved tag gives a plan (exit 2) that
// applies and leaves an empty plan again.
func TestDemo(t *testing.T) {
	if os.Getenv("TF_ACC") == "" {
		t.Skip("TF_ACC not set: the demo needs terraform, moto_server and docker-registry")
	}
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	cli, err := localenv.TestedCLI(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := demo([]string{"-terraform", cli.Path, root}); err != nil {
		t.Fatal(err)
	}
}
