package localenv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
)

// ReadOnlyUser is the IAM user whose key the provider gets.
const ReadOnlyUser = "imagesync-readonly"

// ReadOnlyPolicy is exactly the permission set the provider documents as
// sufficient on the ECR side.
const ReadOnlyPolicy = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["ecr:GetAuthorizationToken","ecr:BatchCheckLayerAvailability","ecr:GetDownloadUrlForLayer","ecr:DescribeRepositories","ecr:ListImages","ecr:DescribeImages","ecr:BatchGetImage"],"Resource":"*"}]}`

const adminUser = "imagesync-admin"

const adminPolicy = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`

// bootstrapCalls is the number of unauthenticated requests moto allows
// (INITIAL_NO_AUTH_ACTION_COUNT): CreateUser, PutUserPolicy, CreateAccessKey
// for the admin. Every later request must be signed by a key IAM allows.
const bootstrapCalls = 3

func (e *Env) startMoto(ctx context.Context, bin string) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	p, err := startProc("moto_server", filepath.Join(e.WorkDir, "moto.log"),
		[]string{fmt.Sprintf("INITIAL_NO_AUTH_ACTION_COUNT=%d", bootstrapCalls)},
		bin, "-H", "127.0.0.1", "-p", fmt.Sprint(port))
	if err != nil {
		return err
	}
	e.procs = append(e.procs, p)
	motoURL := fmt.Sprintf("http://127.0.0.1:%d", port)
	// /moto-api/ is moto's dashboard: not an AWS action, so it does not use
	// up one of the free bootstrap calls.
	if err := p.waitReady(ctx, motoURL+"/moto-api/", func(s int) bool { return s < 500 }); err != nil {
		return err
	}
	if e.ECRAPIProxy, err = e.newProxy(motoURL, nil, http1Only, "ecr-api.test"); err != nil {
		return err
	}
	e.ECRAPIProxy.rp.ModifyResponse = e.rewriteECRAPIResponse
	// moto's server (werkzeug) may close a kept-alive connection while a
	// reused one is being read, which cut responses short under load: one
	// connection per request to moto.
	if tr, ok := e.ECRAPIProxy.rp.Transport.(*http.Transport); ok {
		tr.DisableKeepAlives = true
	}
	e.ECRAPIEndpoint = e.ECRAPIProxy.URL

	// The free calls: anything signs them.
	boot := e.iamClient("bootstrap", "bootstrap")
	if _, err := boot.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String(adminUser)}); err != nil {
		return fmt.Errorf("moto: create admin user: %w", err)
	}
	if _, err := boot.PutUserPolicy(ctx, &iam.PutUserPolicyInput{
		UserName: aws.String(adminUser), PolicyName: aws.String("admin"), PolicyDocument: aws.String(adminPolicy),
	}); err != nil {
		return fmt.Errorf("moto: admin policy: %w", err)
	}
	ak, err := boot.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String(adminUser)})
	if err != nil {
		return fmt.Errorf("moto: admin access key: %w", err)
	}
	e.AdminAccessKeyID, e.AdminSecretAccessKey = *ak.AccessKey.AccessKeyId, *ak.AccessKey.SecretAccessKey

	// From here on IAM is enforced.
	admin := e.iamClient(e.AdminAccessKeyID, e.AdminSecretAccessKey)
	if _, err := admin.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String(ReadOnlyUser)}); err != nil {
		return fmt.Errorf("moto: create %s: %w", ReadOnlyUser, err)
	}
	if _, err := admin.PutUserPolicy(ctx, &iam.PutUserPolicyInput{
		UserName: aws.String(ReadOnlyUser), PolicyName: aws.String("imagesync-ecr-read"), PolicyDocument: aws.String(ReadOnlyPolicy),
	}); err != nil {
		return fmt.Errorf("moto: read-only policy: %w", err)
	}
	rk, err := admin.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String(ReadOnlyUser)})
	if err != nil {
		return fmt.Errorf("moto: read-only access key: %w", err)
	}
	e.AccessKeyID, e.SecretAccessKey = *rk.AccessKey.AccessKeyId, *rk.AccessKey.SecretAccessKey

	return nil
}

// rewriteECRAPIResponse makes moto's answers ECR's: JSON errors, a fresh
// registry token per GetAuthorizationToken, and the pull times DescribeImages
// reports.
func (e *Env) rewriteECRAPIResponse(resp *http.Response) error {
	if err := fixJSONErrors(resp); err != nil {
		return err
	}
	if err := e.ecrPulls.fillDescribeImages(resp); err != nil {
		return err
	}
	return e.ecrTokens.rewriteAuthorizationToken(resp, func(key string) string {
		switch key {
		case e.AccessKeyID:
			return ReadOnlyUser
		case e.AdminAccessKeyID:
			return adminUser
		}
		return ""
	})
}

// moto answers IAM denials with the query protocol's XML error even for
// JSON-protocol services like ECR, which the AWS SDK cannot decode. Real ECR
// answers JSON with these error types, so rewrite them in front of moto.
var jsonErrorTypes = map[string]string{
	"AccessDenied":          "AccessDeniedException",
	"InvalidClientTokenId":  "UnrecognizedClientException",
	"SignatureDoesNotMatch": "InvalidSignatureException",
	"AuthFailure":           "UnrecognizedClientException",
}

var (
	xmlCode    = regexp.MustCompile(`<Code>([^<]*)</Code>`)
	xmlMessage = regexp.MustCompile(`<Message>([^<]*)</Message>`)
)

func fixJSONErrors(resp *http.Response) error {
	if resp.StatusCode < 400 || resp.Request.Header.Get("X-Amz-Target") == "" {
		return nil
	}
	if !strings.Contains(resp.Header.Get("Content-Type"), "xml") && !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/") {
		return nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		return err
	}
	code, msg := "", ""
	if m := xmlCode.FindSubmatch(body); m != nil {
		code = html.UnescapeString(string(m[1]))
	}
	if m := xmlMessage.FindSubmatch(body); m != nil {
		msg = html.UnescapeString(string(m[1]))
	}
	if code == "" {
		resp.Body = io.NopCloser(bytes.NewReader(body))
		return nil
	}
	if t, ok := jsonErrorTypes[code]; ok {
		code = t
	}
	out, _ := json.Marshal(map[string]string{"__type": code, "message": msg})
	setBody(resp, out)
	resp.Header.Set("Content-Type", "application/x-amz-json-1.1")
	resp.Header.Set("X-Amzn-ErrorType", code)
	return nil
}

// rewriteJSON decodes the body of moto's answer into v, lets edit change v,
// and answers v instead.
func rewriteJSON(resp *http.Response, v any, edit func() error) error {
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	resp.Body.Close()
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("moto's answer to %s: %w", resp.Request.Header.Get("X-Amz-Target"), err)
	}
	if err := edit(); err != nil {
		return err
	}
	if body, err = json.Marshal(v); err != nil {
		return err
	}
	setBody(resp, body)
	return nil
}

// setBody replaces the body of an answer.
func setBody(resp *http.Response, body []byte) {
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
}

func (e *Env) iamClient(id, secret string) *iam.Client {
	return iam.NewFromConfig(e.awsConfig(id, secret), func(o *iam.Options) {
		o.BaseEndpoint = aws.String(e.ECRAPIEndpoint)
	})
}
