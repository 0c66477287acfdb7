package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// bearerParam reads one parameter of a Bearer challenge.
var bearerParam = regexp.MustCompile(`(\w+)="([^"]*)"`)

// daemonRefreshPull does what dockerd does to pull with an identity token
// (moby's registry code: distribution's token handler with ClientID
// "docker" and the identity token as its refresh token): read the
// registry's challenge, POST the realm with grant_type=refresh_token,
// client_id=docker, service and the pull scope, then fetch the manifest
// with the access token it got.
func daemonRefreshPull(ctx context.Context, s *session, refreshToken, repo, tag string) error {
	ctx, cancel := context.WithTimeout(ctx, s.m.opts.cmdTimeout)
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 15 * time.Second}
	defer hc.CloseIdleConnections()
	base := "http://" + s.reg.host
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v2/", nil)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	params := map[string]string{}
	for _, m := range bearerParam.FindAllStringSubmatch(resp.Header.Get("WWW-Authenticate"), -1) {
		params[m[1]] = m[2]
	}
	if params["realm"] == "" {
		return fmt.Errorf("no Bearer realm in %q", resp.Header.Get("WWW-Authenticate"))
	}
	form := url.Values{
		"grant_type":    {"refresh_token"},
		"refresh_token": {refreshToken},
		"client_id":     {"docker"},
		"service":       {params["service"]},
		"scope":         {"repository:" + repo + ":pull"},
	}
	req, _ = http.NewRequestWithContext(ctx, http.MethodPost, params["realm"], strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err = hc.Do(req)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("token server answered %d: %s", resp.StatusCode, truncate(flat(string(body)), 300))
	}
	var tr struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.Unmarshal(body, &tr); err != nil || tr.AccessToken == "" {
		return fmt.Errorf("no access_token in the answer (%v): %s", err, truncate(flat(string(body)), 300)) //nolint:errorlint // err may be nil here
	}
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, base+"/v2/"+repo+"/manifests/"+tag, nil)
	req.Header.Set("Authorization", "Bearer "+tr.AccessToken)
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")
	resp, err = hc.Do(req)
	if err != nil {
		return err
	}
	body, _ = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("registry answered %d with the refreshed token: %s", resp.StatusCode, truncate(flat(string(body)), 300))
	}
	return nil
}
