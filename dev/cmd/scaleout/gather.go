package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// gather reads haproxy's stats and log, the replicas' logs and metrics,
// and the fakes' counters.
func (s *scaleout) gather(res *results) {
	if st, err := s.lbStatsNow(); err == nil {
		res.lbStats = st
	} else {
		res.setupErr = fmt.Sprintf("haproxy stats: %v", err)
	}
	for _, l := range s.lbLines.lines() {
		if r, ok := parseLBLine(l.text); ok && r.frontend == "token" {
			r.at = l.at.Sub(s.t0) // logged when the answer went out
			res.lb = append(res.lb, r)
		}
	}
	metricsClient := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}, Timeout: 2 * time.Second}
	for _, r := range s.replicas {
		rep := replicaReport{name: r.name}
		for i, p := range r.procs {
			pr := procReport{n: i + 1, tally: parseReplicaLog(p.readLog())}
			switch {
			case !p.Exited():
				pr.endedBy = "running"
				pr.metrics = scrapeMetrics(metricsClient, "http://"+r.metricsAddr+"/metrics")
			case i == 0 && r.stopped == "SIGTERM":
				pr.endedBy = "stopped by SIGTERM (" + exitText(p.Err()) + ")"
				res.sigterm.drained = pr.tally.afterSIGTRM
			default:
				pr.endedBy = "killed (" + exitText(p.Err()) + ")"
			}
			rep.procs = append(rep.procs, pr)
			res.replicaStarts++
		}
		res.replicas = append(res.replicas, rep)
	}
	res.registry = parseRegistryLog(s.registry.readLog())
	res.metaCalls = s.meta.Calls()
	res.bundleReqs, res.bundle304, res.bundleGets = s.bundles.counts()
	// haproxy's own notices (servers going down and up), for the timeline.
	for _, l := range s.lbLines.lines() {
		// Each notice comes twice: on stderr as "[WARNING] (pid) : …" and
		// in the log; the log's copy is kept.
		if !strings.HasPrefix(l.text, "[") && strings.Contains(l.text, "replicas/") &&
			(strings.Contains(l.text, " is DOWN") || strings.Contains(l.text, " is UP")) {
			what, _, _ := strings.Cut(l.text, ". ")
			s.evMu.Lock()
			s.events = append(s.events, event{at: l.at.Sub(s.t0), what: "haproxy: " + strings.TrimSpace(what)})
			s.evMu.Unlock()
		}
	}
}

// scrapeMetrics returns the srht_registry_tokens_issued_total and
// srht_registry_policy_bundle_revision_info lines of a replica's metrics
// endpoint, or nothing if it does not answer (metrics are optional here).
func scrapeMetrics(client *http.Client, url string) []string {
	resp, err := client.Get(url)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil
	}
	var out []string
	for l := range strings.Lines(string(body)) {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "srht_registry_tokens_issued_total") || strings.HasPrefix(l, "srht_registry_policy_bundle_revision_info") {
			out = append(out, l)
		}
	}
	return out
}
