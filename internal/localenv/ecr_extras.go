package localenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	ecrtypes "github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/regclient/regclient/types/ref"
)

// CreateECRRepository makes an ECR repository with no image, as a team's
// placeholder would be.
func (e *Env) CreateECRRepository(ctx context.Context, repo string) error {
	_, err := e.ECRClient(ctx, true).CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: aws.String(repo)})
	var exists *ecrtypes.RepositoryAlreadyExistsException
	if err != nil && !errors.As(err, &exists) {
		return fmt.Errorf("moto CreateRepository %s: %w", repo, err)
	}
	return nil
}

// SignECRImage pushes a new signature whose subject is the image at digest
// in repo, as a signing step after the push would; each call makes a new
// signature. It returns the signature's digest.
func (e *Env) SignECRImage(ctx context.Context, repo, subjectDigest string) (string, error) {
	r, subject, err := e.ecrSubject(ctx, repo, subjectDigest)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, 8)
	_, _ = rand.Read(nonce)
	return e.pushReferrer(ctx, r, subject, hex.EncodeToString(nonce))
}

// ecrSubject is the repository at the ECR registry and the descriptor of the
// manifest at subjectDigest in it, for a referrer to name as its subject.
func (e *Env) ecrSubject(ctx context.Context, repo, subjectDigest string) (ref.Ref, ociDesc, error) {
	r, err := e.ecrRepository(repo)
	if err != nil {
		return ref.Ref{}, ociDesc{}, err
	}
	m, err := e.regClient().ManifestHead(ctx, r.SetDigest(subjectDigest))
	if err != nil {
		return ref.Ref{}, ociDesc{}, fmt.Errorf("head %s@%s: %w", repo, subjectDigest, err)
	}
	d := m.GetDescriptor()
	return r, ociDesc{MediaType: d.MediaType, Digest: d.Digest.String(), Size: d.Size}, nil
}

// RecordECRTag records tag -> digest in the ECR API only, for tags the
// registry itself cannot hold (ECR allows 300 characters, distribution 128):
// ListImages shows them as real ECR would.
func (e *Env) RecordECRTag(ctx context.Context, repo, tag, digest string) error {
	r, err := e.ecrRepository(repo)
	if err != nil {
		return err
	}
	m, err := e.regClient().ManifestGet(ctx, r.SetDigest(digest))
	if err != nil {
		return fmt.Errorf("get %s@%s: %w", repo, digest, err)
	}
	raw, err := m.RawBody()
	if err != nil {
		return err
	}
	return e.recordECR(ctx, repo, tag, raw, m.GetDescriptor().MediaType, digest)
}

// ecrRepository is the reference of a repository at the ECR registry proxy.
func (e *Env) ecrRepository(repo string) (ref.Ref, error) {
	return ref.New(hostOf(e.ECRRegistryEndpoint) + "/" + repo)
}

// TagECRImageDigest puts the manifest at digest under tag, in the registry
// and in the ECR API.
func (e *Env) TagECRImageDigest(ctx context.Context, repo, digest, tag string) (string, error) {
	r, err := e.ecrRepository(repo)
	if err != nil {
		return "", err
	}
	m, err := e.regClient().ManifestGet(ctx, r.SetDigest(digest))
	if err != nil {
		return "", fmt.Errorf("get %s@%s: %w", repo, digest, err)
	}
	raw, err := m.RawBody()
	if err != nil {
		return "", err
	}
	mt := m.GetDescriptor().MediaType
	if err := e.putManifest(ctx, r.SetTag(tag), raw, mt); err != nil {
		return "", fmt.Errorf("tag %s:%s: %w", repo, tag, err)
	}
	return digest, e.recordECR(ctx, repo, tag, raw, mt, digest)
}

// ECRBytes sums the manifest at dig in repo, its config and layers, and
// those of the manifests inside it, as Image.Bytes does for a push: each
// reference counted, a blob two of them share counted twice.
func (e *Env) ECRBytes(ctx context.Context, repo, dig string) (int64, error) {
	r, err := e.ecrRepository(repo)
	if err != nil {
		return 0, err
	}
	m, err := e.regClient().ManifestGet(ctx, r.SetDigest(dig))
	if err != nil {
		return 0, fmt.Errorf("get %s@%s: %w", repo, dig, err)
	}
	raw, err := m.RawBody()
	if err != nil {
		return 0, err
	}
	size, _ := e.sizeOf(ctx, r, raw)
	return size, nil
}
