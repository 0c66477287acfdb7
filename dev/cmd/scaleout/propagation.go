package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// policyData is data.registry before and after the change: the change
// grants the probe user (the principal htpasswd:probe: a bundle's data is
// not resolved like the config's, and a bare name matches nobody) pull on
// shared/*, which it was refused before. Nothing the clients do depends on
// it.
func policyData(changed bool) map[string]any {
	ns := map[string]any{}
	if changed {
		ns["shared"] = map[string]any{"pull": []any{"htpasswd:" + probeUser}}
	}
	return map[string]any{"registry": map[string]any{"public": []any{}, "namespaces": ns}}
}

// decision asks addr (a replica, or the balancer) what the probe user gets
// on probeScope; granted reports whether the token grants pull. servedBy
// is haproxy's X-Served-By header ("" when asked directly).
func (s *scaleout) decision(ctx context.Context, client *http.Client, base string) (granted bool, servedBy string, err error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/auth?service="+service+"&scope="+probeScope, nil)
	if err != nil {
		return false, "", err
	}
	req.SetBasicAuth(probeUser, s.passwords[probeUser])
	resp, err := client.Do(req)
	if err != nil {
		return false, "", err
	}
	defer resp.Body.Close()
	servedBy = resp.Header.Get("X-Served-By")
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return false, servedBy, fmt.Errorf("status %d: %s", resp.StatusCode, oneLine(string(body)))
	}
	granted, err = grantsPull(body)
	return granted, servedBy, err
}

// grantsPull reads the token in a token response and reports whether its
// access claim grants pull on the probe's repository. The signature is not
// checked: the registry does that; here only the decision matters.
func grantsPull(body []byte) (bool, error) {
	var tr struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(body, &tr); err != nil {
		return false, fmt.Errorf("token response: %w", err)
	}
	parts := strings.Split(tr.Token, ".")
	if len(parts) != 3 {
		return false, fmt.Errorf("token is not a JWS")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return false, fmt.Errorf("token payload: %w", err)
	}
	var claims struct {
		Access []struct {
			Type    string   `json:"type"`
			Name    string   `json:"name"`
			Actions []string `json:"actions"`
		} `json:"access"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return false, fmt.Errorf("token claims: %w", err)
	}
	for _, a := range claims.Access {
		if a.Type == "repository" && a.Name == "shared/app" && slices.Contains(a.Actions, "pull") {
			return true, nil
		}
	}
	return false, nil
}

// checkPropagation changes the bundle and measures, per replica, how long
// until it answers with the new decision; then asks through the balancer.
func (s *scaleout) checkPropagation(ctx context.Context, res *results) {
	direct := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	for _, r := range s.replicas {
		granted, _, err := s.decision(ctx, direct, "http://"+r.addr)
		res.oldDecision[r.name] = err == nil && !granted
	}
	if err := s.bundles.set("v2", policyData(true)); err != nil {
		res.setupErr = err.Error()
		return
	}
	changed := time.Now()
	s.event("bundle server: revision v2 (grants htpasswd:%s pull on shared/*)", probeUser)

	// Measured past the bound too, so a late replica shows how late.
	giveUp := res.propagationOK + 10*time.Second
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, r := range s.replicas {
		wg.Go(func() {
			p := propagation{replica: r.name, fetched: -1, effective: -1}
			for time.Since(changed) < giveUp && ctx.Err() == nil {
				granted, _, err := s.decision(ctx, direct, "http://"+r.addr)
				if err != nil {
					p.err = err.Error()
				} else if granted {
					p.effective = time.Since(changed)
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if f := s.bundles.firstFetch(r.name, "v2"); !f.IsZero() {
				p.fetched = f.Sub(changed)
			}
			mu.Lock()
			res.propagation = append(res.propagation, p)
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.SortFunc(res.propagation, func(a, b propagation) int { return strings.Compare(a.replica, b.replica) })
	s.event("policy change checked on %d replicas", len(res.propagation))

	// Through the balancer: round robin spreads these over every replica.
	via := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	for range 3 * len(s.replicas) {
		res.balancer.asked++
		granted, by, err := s.decision(ctx, via, "http://"+s.lbHost)
		switch {
		case err != nil:
			res.balancer.errs = append(res.balancer.errs, err.Error())
		case granted:
			res.balancer.granted++
			res.balancer.byServer[by]++
		default:
			res.balancer.errs = append(res.balancer.errs, by+": old decision")
		}
	}
}
