package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

const (
	// bfThreshold is the replicas' brute_force.threshold. The load never
	// fails a login, so it never comes near it.
	bfThreshold = 5
	// attackAddr is the loopback address the shared-limit check connects
	// from, straight to the replicas: neither the CLIs' 127.0.0.1, the
	// in-process clients' goClientAddr nor haproxy's proxySource, so the
	// per-address block it earns touches none of them.
	attackAddr = "127.0.0.4"
	// attackUser is a user name nobody else uses (and no htpasswd user):
	// the per-user block it earns touches nobody else.
	attackUser = "mallory"
)

// sharedLimitCheck is what the shared brute-force limit check saw: wrong
// passwords sent straight to the replicas in turn, then one more to each.
type sharedLimitCheck struct {
	checked   bool
	threshold int
	failures  []attempt // the first threshold attempts: 401 each
	after     []attempt // one more on every replica: 429 each
}

type attempt struct {
	replica string
	status  int
	err     string
}

func (a attempt) String() string { return a.replica + " " + a.outcome() }

// outcome is the status, or the error when there was no answer.
func (a attempt) outcome() string {
	if a.err != "" {
		return a.err
	}
	return strconv.Itoa(a.status)
}

// startRedis starts redis-server on port, without persistence, in dir,
// and waits until it answers PING.
func (s *scaleout) startRedis(ctx context.Context, port int) error {
	var err error
	s.redis, err = startChild("redis", s.logDir+"/redis.log", nil, nil, s.opts.redis,
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", s.tmp)
	if err != nil {
		return err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(startTimeout)
	for {
		if s.redis.Exited() {
			return fmt.Errorf("redis-server exited (%w)\n%s", s.redis.Err(), truncate(s.redis.log.String(), 4000))
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err = redisPing(addr); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server did not answer PING on %s after %v: %w", addr, startTimeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func redisPing(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}

// checkSharedLimit sends bfThreshold wrong passwords for attackUser from
// attackAddr straight to the replicas, round robin (2+2+1 with a
// threshold of 5: no replica sees the threshold on its own), then one
// more to each replica: with the counts shared through Redis every one
// must answer 429; with per-replica counts each would still answer 401.
func (s *scaleout) checkSharedLimit(ctx context.Context, res *results) {
	sl := sharedLimitCheck{checked: true, threshold: bfThreshold}
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(attackAddr)}, Timeout: 5 * time.Second}
	client := &http.Client{
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true, DialContext: d.DialContext},
		Timeout:   10 * time.Second,
	}
	q := url.Values{"service": {service}, "scope": {"repository:" + attackUser + "/app:pull"}}.Encode()
	try := func(r *replica, n int) attempt {
		a := attempt{replica: r.name}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.addr+"/auth?"+q, nil)
		if err != nil {
			a.err = err.Error()
			return a
		}
		req.SetBasicAuth(attackUser, fmt.Sprintf("wrong-%d", n))
		resp, err := client.Do(req)
		if err != nil {
			a.err = oneLine(err.Error())
			return a
		}
		resp.Body.Close()
		a.status = resp.StatusCode
		return a
	}
	n := 0
	for i := range bfThreshold {
		n++
		sl.failures = append(sl.failures, try(s.replicas[i%len(s.replicas)], n))
	}
	for _, r := range s.replicas {
		n++
		sl.after = append(sl.after, try(r, n))
	}
	res.sharedLimit = sl
	s.event("shared brute-force limit: %d wrong passwords over %d replicas, then one more each: %v", bfThreshold, len(s.replicas), sl.after)
}

// evaluate lists how the shared-limit check failed.
func (sl sharedLimitCheck) evaluate(add func(string, ...any)) {
	if !sl.checked {
		add("the shared brute-force limit was not checked")
		return
	}
	for i, a := range sl.failures {
		if a.status != http.StatusUnauthorized {
			add("shared brute-force limit: wrong password %d of %d (%s) answered %s, not 401", i+1, sl.threshold, a.replica, a.outcome())
		}
	}
	if len(sl.after) == 0 {
		add("shared brute-force limit: no replica was asked after the failures")
	}
	for _, a := range sl.after {
		if a.status != http.StatusTooManyRequests {
			add("shared brute-force limit: after %d failures over the replicas, %s answered %s, not 429 (the counts are not shared)", sl.threshold, a.replica, a.outcome())
		}
	}
}

// print writes the check's report line.
func (sl sharedLimitCheck) print(w io.Writer) {
	if !sl.checked {
		fmt.Fprintln(w, "shared brute-force limit: not checked")
		return
	}
	per := map[string]int{}
	var order []string
	for _, a := range sl.failures {
		if per[a.replica] == 0 {
			order = append(order, a.replica)
		}
		per[a.replica]++
	}
	var spread []string
	for _, r := range order {
		spread = append(spread, strconv.Itoa(per[r]))
	}
	got429 := 0
	for _, a := range sl.after {
		if a.status == http.StatusTooManyRequests {
			got429++
		}
	}
	verdict := fmt.Sprintf("all %d answer 429", len(sl.after))
	if got429 != len(sl.after) {
		verdict = fmt.Sprintf("%d of %d answer 429: %v", got429, len(sl.after), sl.after)
	}
	fmt.Fprintf(w, "shared brute-force limit (brute_force.store: Redis, threshold %d): %d failures over %d replicas (%s, from %s, straight to the replicas) → %s\n",
		sl.threshold, len(sl.failures), len(order), strings.Join(spread, "+"), attackAddr, verdict)
}
