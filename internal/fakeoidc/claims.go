package fakeoidc

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// The claim sets below follow the vendors' documentation and real tokens:
//
//   - GitHub Actions: docs.github.com, "OpenID Connect reference" (OIDC
//     token claims), and tokens as the actions-oidc-debugger prints them.
//     Every custom claim is a string, IDs and counters included;
//     ref_protected is "true" or "false"; head_ref and base_ref are "" but
//     for pull requests; nbf is iat-5m and exp iat+5m.
//   - GitLab CI: docs.gitlab.com, "OpenID Connect (OIDC) Authentication
//     Using ID Tokens" (Token payload). IDs are strings but runner_id, a
//     number; ref_protected and environment_protected are "true" or
//     "false"; ref is the short name (main), ref_path the full one; nbf is
//     iat-5s and exp is iat plus the job timeout (5 minutes when the job
//     has none).
//   - Kubernetes: a projected service account token (TokenRequest API):
//     aud is an array, sub system:serviceaccount:<ns>:<sa>, and the
//     kubernetes.io claim holds the namespace and the bound objects; nbf
//     is iat and exp iat + expirationSeconds.

// GitHubOptions describe a GitHub Actions job; zero fields get the values
// of GitHub's documented example (octo-org/octo-repo, octocat, …).
type GitHubOptions struct {
	Owner        string // repository_owner; default octo-org
	Repo         string // the repository's name without its owner; default octo-repo
	OwnerID      string // repository_owner_id; default "65"
	RepositoryID string // repository_id; default "74"
	// Ref is the git ref the workflow runs for; default refs/heads/main,
	// or refs/pull/1/merge for EventName pull_request.
	Ref string
	// RefType is branch or tag; default tag for a Ref under refs/tags/,
	// branch otherwise.
	RefType      string
	RefProtected bool   // ref_protected ("true"/"false")
	SHA          string // the commit; default random
	EventName    string // event_name; default push
	// HeadRef and BaseRef are the source and target branches of a pull
	// request; "" for other events (for pull_request: feature, main).
	HeadRef, BaseRef string
	// Environment is the environment the job references; "" leaves the
	// claim out. With one, sub is repo:<owner>/<repo>:environment:<env>.
	Environment string
	Actor       string // default octocat
	ActorID     string // default "12"
	Workflow    string // the workflow's name; default CI
	// WorkflowPath is the workflow file; default .github/workflows/ci.yml.
	// workflow_ref is <owner>/<repo>/<path>@<ref>.
	WorkflowPath string
	// JobWorkflowRef is the workflow file the job comes from (another
	// repository's, for a reusable workflow); default workflow_ref.
	JobWorkflowRef    string
	JobWorkflowSHA    string // default SHA
	Visibility        string // repository_visibility; default private
	RunnerEnvironment string // github-hosted (default) or self-hosted
	RunID             string // default random
	RunNumber         string // default "10"
	RunAttempt        string // default "1"
	// Enterprise and EnterpriseID are set for a repository of an
	// enterprise; "" leaves both claims out.
	Enterprise, EnterpriseID string
	// Audience is aud; default https://github.com/<owner>, what GitHub
	// sends when the job asks for no audience.
	Audience string
	// Subject replaces the default sub (an organisation's custom subject
	// template).
	Subject string
}

// GitHubClaims returns the claims of a GitHub Actions ID token for the
// job o describes, issued now by this issuer's clock.
func (s *Issuer) GitHubClaims(o GitHubOptions) map[string]any {
	def(&o.Owner, "octo-org")
	def(&o.Repo, "octo-repo")
	def(&o.OwnerID, "65")
	def(&o.RepositoryID, "74")
	def(&o.EventName, "push")
	if o.EventName == "pull_request" {
		def(&o.Ref, "refs/pull/1/merge")
		def(&o.HeadRef, "feature")
		def(&o.BaseRef, "main")
	}
	def(&o.Ref, "refs/heads/main")
	if strings.HasPrefix(o.Ref, "refs/tags/") {
		def(&o.RefType, "tag")
	}
	def(&o.RefType, "branch")
	def(&o.SHA, randomHex(20))
	def(&o.Actor, "octocat")
	def(&o.ActorID, "12")
	def(&o.Workflow, "CI")
	def(&o.WorkflowPath, ".github/workflows/ci.yml")
	repo := o.Owner + "/" + o.Repo
	workflowRef := repo + "/" + o.WorkflowPath + "@" + o.Ref
	def(&o.JobWorkflowRef, workflowRef)
	def(&o.JobWorkflowSHA, o.SHA)
	def(&o.Visibility, "private")
	def(&o.RunnerEnvironment, "github-hosted")
	def(&o.RunID, randomDigits(11))
	def(&o.RunNumber, "10")
	def(&o.RunAttempt, "1")
	def(&o.Audience, "https://github.com/"+o.Owner)
	if o.Subject == "" {
		switch {
		case o.Environment != "":
			o.Subject = "repo:" + repo + ":environment:" + o.Environment
		case o.EventName == "pull_request":
			o.Subject = "repo:" + repo + ":pull_request"
		default:
			o.Subject = "repo:" + repo + ":ref:" + o.Ref
		}
	}
	now := s.clock().Unix()
	c := map[string]any{
		"jti":                   newUUID(),
		"sub":                   o.Subject,
		"aud":                   o.Audience,
		"ref":                   o.Ref,
		"sha":                   o.SHA,
		"repository":            repo,
		"repository_owner":      o.Owner,
		"repository_owner_id":   o.OwnerID,
		"run_id":                o.RunID,
		"run_number":            o.RunNumber,
		"run_attempt":           o.RunAttempt,
		"repository_visibility": o.Visibility,
		"repository_id":         o.RepositoryID,
		"actor_id":              o.ActorID,
		"actor":                 o.Actor,
		"workflow":              o.Workflow,
		"head_ref":              o.HeadRef,
		"base_ref":              o.BaseRef,
		"event_name":            o.EventName,
		"ref_protected":         boolString(o.RefProtected),
		"ref_type":              o.RefType,
		"workflow_ref":          workflowRef,
		"workflow_sha":          o.SHA,
		"job_workflow_ref":      o.JobWorkflowRef,
		"job_workflow_sha":      o.JobWorkflowSHA,
		"runner_environment":    o.RunnerEnvironment,
		"iss":                   s.issuer,
		"nbf":                   now - int64((5 * time.Minute).Seconds()),
		"exp":                   now + int64((5 * time.Minute).Seconds()),
		"iat":                   now,
	}
	if o.Environment != "" {
		c["environment"] = o.Environment
	}
	if o.Enterprise != "" || o.EnterpriseID != "" {
		c["enterprise"] = o.Enterprise
		c["enterprise_id"] = o.EnterpriseID
	}
	return c
}

// GitLabOptions describe a GitLab CI job; zero fields get defaults in the
// style of GitLab's documented example.
type GitLabOptions struct {
	Namespace   string // namespace_path (a group or user, subgroups with /); default my-group
	Project     string // the project's name; project_path is <namespace>/<project>; default my-project
	NamespaceID string // default "72"
	ProjectID   string // default "20"
	UserID      string // default "1"
	UserLogin   string // default sample-user
	UserEmail   string // default <login>@example.com
	// UserAccessLevel is the user's role in the project (guest, reporter,
	// developer, maintainer, owner); default developer.
	UserAccessLevel string
	// UserIdentities are the user's external identities
	// ({"provider": …, "extern_uid": …}); nil leaves the claim out, as
	// GitLab does unless the user opted in.
	UserIdentities []map[string]any
	// GroupsDirect are the groups the user is a direct member of; nil
	// leaves the claim out.
	GroupsDirect   []string
	PipelineID     string // default random
	PipelineSource string // push (default), merge_request_event, schedule, web, …
	JobID          string // default random
	Ref            string // the branch or tag name (main, not refs/heads/main); default main
	RefType        string // branch (default) or tag
	RefProtected   bool   // ref_protected ("true"/"false")
	// Environment is the environment the job deploys to; "" leaves it,
	// environment_protected and deployment_tier out.
	Environment          string
	EnvironmentProtected bool
	DeploymentTier       string // production, staging, testing, development or other (default)
	RunnerID             int64  // a number, unlike the other IDs; default 1
	RunnerEnvironment    string // gitlab-hosted (default) or self-hosted
	SHA                  string // default random
	ProjectVisibility    string // default private
	CIConfigPath         string // default .gitlab-ci.yml
	// Audience is aud (the job's id_tokens: aud); default the instance
	// URL, GitLab's default.
	Audience string
	// Subject replaces the default sub
	// project_path:<path>:ref_type:<type>:ref:<ref>.
	Subject string
	// JobTimeout is the job's timeout, which is the token's lifetime;
	// default 1h (a project's default timeout).
	JobTimeout time.Duration
}

// GitLabClaims returns the claims of a GitLab CI ID token for the job o
// describes, issued now by this issuer's clock.
func (s *Issuer) GitLabClaims(o GitLabOptions) map[string]any {
	def(&o.Namespace, "my-group")
	def(&o.Project, "my-project")
	def(&o.NamespaceID, "72")
	def(&o.ProjectID, "20")
	def(&o.UserID, "1")
	def(&o.UserLogin, "sample-user")
	def(&o.UserEmail, o.UserLogin+"@example.com")
	def(&o.UserAccessLevel, "developer")
	def(&o.PipelineID, randomDigits(10))
	def(&o.PipelineSource, "push")
	def(&o.JobID, randomDigits(11))
	def(&o.Ref, "main")
	def(&o.RefType, "branch")
	def(&o.RunnerEnvironment, "gitlab-hosted")
	def(&o.SHA, randomHex(20))
	def(&o.ProjectVisibility, "private")
	def(&o.CIConfigPath, ".gitlab-ci.yml")
	def(&o.Audience, s.issuer)
	if o.RunnerID == 0 {
		o.RunnerID = 1
	}
	if o.JobTimeout == 0 {
		o.JobTimeout = time.Hour
	}
	path := o.Namespace + "/" + o.Project
	refPath := "refs/heads/" + o.Ref
	if o.RefType == "tag" {
		refPath = "refs/tags/" + o.Ref
	}
	def(&o.Subject, "project_path:"+path+":ref_type:"+o.RefType+":ref:"+o.Ref)
	host := s.issuer
	if u, err := url.Parse(s.issuer); err == nil {
		host = u.Host + strings.TrimSuffix(u.Path, "/")
	}
	now := s.clock().Unix()
	c := map[string]any{
		"namespace_id":       o.NamespaceID,
		"namespace_path":     o.Namespace,
		"project_id":         o.ProjectID,
		"project_path":       path,
		"user_id":            o.UserID,
		"user_login":         o.UserLogin,
		"user_email":         o.UserEmail,
		"user_access_level":  o.UserAccessLevel,
		"pipeline_id":        o.PipelineID,
		"pipeline_source":    o.PipelineSource,
		"job_id":             o.JobID,
		"ref":                o.Ref,
		"ref_type":           o.RefType,
		"ref_path":           refPath,
		"ref_protected":      boolString(o.RefProtected),
		"runner_id":          o.RunnerID,
		"runner_environment": o.RunnerEnvironment,
		"sha":                o.SHA,
		"project_visibility": o.ProjectVisibility,
		"ci_config_ref_uri":  host + "/" + path + "//" + o.CIConfigPath + "@" + refPath,
		"ci_config_sha":      o.SHA,
		"jti":                newUUID(),
		"iss":                s.issuer,
		"iat":                now,
		"nbf":                now - 5,
		"exp":                now + int64(o.JobTimeout.Seconds()),
		"sub":                o.Subject,
		"aud":                o.Audience,
	}
	if o.UserIdentities != nil {
		ids := make([]any, len(o.UserIdentities))
		for i, id := range o.UserIdentities {
			ids[i] = id
		}
		c["user_identities"] = ids
	}
	if o.GroupsDirect != nil {
		groups := make([]any, len(o.GroupsDirect))
		for i, g := range o.GroupsDirect {
			groups[i] = g
		}
		c["groups_direct"] = groups
	}
	if o.Environment != "" {
		def(&o.DeploymentTier, "other")
		c["environment"] = o.Environment
		c["environment_protected"] = boolString(o.EnvironmentProtected)
		c["deployment_tier"] = o.DeploymentTier
	}
	return c
}

// KubernetesOptions describe a pod's projected service account token.
type KubernetesOptions struct {
	Namespace      string // default default
	ServiceAccount string // default default
	// PodName is the pod the token is bound to; "" leaves pod (and node)
	// out, as for a token requested for the service account alone.
	PodName  string
	NodeName string // the pod's node (Kubernetes 1.30+); "" leaves it out
	// Audiences are aud (the projected volume's audience); default the
	// issuer, the API server's own audience.
	Audiences []string
	// ExpirationSeconds is the token's lifetime; default 3600.
	ExpirationSeconds int64
}

// KubernetesClaims returns the claims of a projected service account
// token, issued now by this issuer's clock. UIDs are random.
func (s *Issuer) KubernetesClaims(o KubernetesOptions) map[string]any {
	def(&o.Namespace, "default")
	def(&o.ServiceAccount, "default")
	if o.Audiences == nil {
		o.Audiences = []string{s.issuer}
	}
	if o.ExpirationSeconds == 0 {
		o.ExpirationSeconds = 3600
	}
	aud := make([]any, len(o.Audiences))
	for i, a := range o.Audiences {
		aud[i] = a
	}
	k8s := map[string]any{
		"namespace":      o.Namespace,
		"serviceaccount": map[string]any{"name": o.ServiceAccount, "uid": newUUID()},
	}
	if o.PodName != "" {
		k8s["pod"] = map[string]any{"name": o.PodName, "uid": newUUID()}
		if o.NodeName != "" {
			k8s["node"] = map[string]any{"name": o.NodeName, "uid": newUUID()}
		}
	}
	now := s.clock().Unix()
	return map[string]any{
		"aud":           aud,
		"exp":           now + o.ExpirationSeconds,
		"iat":           now,
		"iss":           s.issuer,
		"jti":           newUUID(),
		"kubernetes.io": k8s,
		"nbf":           now,
		"sub":           "system:serviceaccount:" + o.Namespace + ":" + o.ServiceAccount,
	}
}

func def(field *string, value string) {
	if *field == "" {
		*field = value
	}
}

func boolString(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("fakeoidc: %v", err))
	}
	return b
}

func randomHex(n int) string { return hex.EncodeToString(randomBytes(n)) }

// randomDigits returns n decimal digits, the first not 0.
func randomDigits(n int) string {
	b := randomBytes(n)
	d := make([]byte, n)
	for i, x := range b {
		d[i] = '0' + x%10
	}
	if d[0] == '0' {
		d[0] = '1'
	}
	return string(d)
}

// newUUID returns a random (version 4) UUID, the form of the vendors' jti.
func newUUID() string {
	b := randomBytes(16)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
