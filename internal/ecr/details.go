package ecr

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"
)

// ImageDetail is what ECR records about one image (one digest).
type ImageDetail struct {
	Digest    string
	Tags      []string
	SizeBytes int64
	PushedAt  time.Time
	// LastPulledAt is ECR's lastRecordedPullTime, zero when ECR recorded no
	// pull. ECR refreshes it with a delay (at least once a day), so it is
	// approximate.
	LastPulledAt time.Time
}

// ImageDetails describes every image of a repository (tagged or not),
// sorted by digest, with DescribeImages: one call per page of up to 1,000
// images.
func (c *Client) ImageDetails(ctx context.Context, registryID, repository string) ([]ImageDetail, error) {
	var out []ImageDetail
	p := ecr.NewDescribeImagesPaginator(c.api, &ecr.DescribeImagesInput{
		RegistryId:     c.registry(registryID),
		RepositoryName: aws.String(repository),
		MaxResults:     aws.Int32(pageLimit),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			var nf *types.RepositoryNotFoundException
			if errors.As(err, &nf) {
				return nil, fmt.Errorf("%w: %q", ErrRepositoryNotFound, repository)
			}
			return nil, fmt.Errorf("describing the images of ECR repository %q: %w", repository, err)
		}
		for _, d := range page.ImageDetails {
			out = append(out, ImageDetail{
				Digest:       aws.ToString(d.ImageDigest),
				Tags:         d.ImageTags,
				SizeBytes:    aws.ToInt64(d.ImageSizeInBytes),
				PushedAt:     aws.ToTime(d.ImagePushedAt),
				LastPulledAt: aws.ToTime(d.LastRecordedPullTime),
			})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Digest < out[j].Digest })
	return out, nil
}

// DetailsOf describes the images of each repository, keyed by repository name.
func (c *Client) DetailsOf(ctx context.Context, repos []Repository) (map[string][]ImageDetail, error) {
	out := make([][]ImageDetail, len(repos))
	err := eachRepository(ctx, len(repos), func(ctx context.Context, i int) (err error) {
		out[i], err = c.ImageDetails(ctx, repos[i].RegistryID, repos[i].Name)
		return err
	})
	if err != nil {
		return nil, err
	}
	byName := make(map[string][]ImageDetail, len(repos))
	for i, r := range repos {
		byName[r.Name] = out[i]
	}
	return byName, nil
}
