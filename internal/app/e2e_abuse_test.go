package app

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"git.sr.ht/~zozs/srht-registry/internal/fakemeta"
)

// Load test parameters. Every loop below is bounded both by these counts
// and by the run's deadline.
const (
	abuseDuration      = 5 * time.Second
	abuseThreshold     = 5  // brute_force.threshold
	abuseMaxConcurrent = 64 // limits.max_concurrent
	abuseFloodSize     = abuseMaxConcurrent + 16
	abuseWorkersPerIP  = 2 // attacker workers per attacking address
	abuseGoodMax       = 20000
	abuseAttackMax     = 400
	abuseJunkRounds    = 400
	abuseHeapBound     = 200 << 20 // HeapInuse after GC, at the end
	abuseHeapGrowth    = 100 << 20 // HeapInuse growth over the run, after GC
)

// abuseResp is one answer as a load-test client saw it.
type abuseResp struct {
	status int
	header http.Header
	body   []byte
	err    error
}

func abuseDo(client *http.Client, req *http.Request) abuseResp {
	resp, err := client.Do(req)
	if err != nil {
		return abuseResp{err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return abuseResp{status: resp.StatusCode, header: resp.Header, body: body, err: err}
}

// errorJSON decodes the server's JSON error body; ok is false if the body
// is not one.
func abuseErrorJSON(r abuseResp) (code, message string, ok bool) {
	if !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		return "", "", false
	}
	var e struct {
		Errors []struct{ Code, Message string } `json:"errors"`
	}
	if json.Unmarshal(r.body, &e) != nil || len(e.Errors) == 0 || e.Errors[0].Code == "" {
		return "", "", false
	}
	return e.Errors[0].Code, e.Errors[0].Message, true
}

// shed reports whether r is the deliberate 503 of limits.max_concurrent.
func abuseShed(r abuseResp) bool {
	if r.err != nil || r.status != http.StatusServiceUnavailable {
		return false
	}
	_, msg, ok := abuseErrorJSON(r)
	return ok && strings.Contains(msg, "too many requests in flight") && r.header.Get("Retry-After") != ""
}

// abuseTally counts answers per class of client and per source address,
// and keeps the first problems seen.
type abuseTally struct {
	mu       sync.Mutex
	byClass  map[string]map[int]int // class -> status (0 = transport error) -> count
	byAddr   map[string]map[int]int
	problems []string
	nProb    int
}

func (t *abuseTally) add(class, addr string, r abuseResp) {
	t.mu.Lock()
	defer t.mu.Unlock()
	status := r.status
	if r.err != nil {
		status = 0
	}
	for _, m := range []struct {
		table map[string]map[int]int
		key   string
	}{{t.byClass, class}, {t.byAddr, addr}} {
		if m.table[m.key] == nil {
			m.table[m.key] = map[int]int{}
		}
		m.table[m.key][status]++
	}
	// Whatever the class: no 5xx but the deliberate 503, no broken answer.
	switch {
	case r.err != nil:
		t.problemLocked("%s %s: transport error: %v", class, addr, r.err)
	case r.status >= 500 && !abuseShed(r):
		t.problemLocked("%s %s: %d that is not the deliberate in-flight 503: %.300s", class, addr, r.status, r.body)
	}
}

func (t *abuseTally) problem(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.problemLocked(format, args...)
}

func (t *abuseTally) problemLocked(format string, args ...any) {
	t.nProb++
	if len(t.problems) < 30 {
		t.problems = append(t.problems, fmt.Sprintf(format, args...))
	}
}

func (t *abuseTally) count(table map[string]map[int]int, key string, status int) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return table[key][status]
}

// tokenAccess decodes the access claim of a token response body.
func abuseTokenAccess(body []byte) ([]abuseAccess, error) {
	var ok struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(body, &ok); err != nil {
		return nil, err
	}
	parts := strings.Split(ok.Token, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("not a JWS: %q", ok.Token)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, err
	}
	var claims struct {
		Access []abuseAccess `json:"access"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return nil, err
	}
	return claims.Access, nil
}

type abuseAccess struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// abuseJunkCase is one malformed request and the 4xx it must get.
type abuseJunkCase struct {
	name   string
	status int
	build  func() *http.Request
}

func abuseJunkCases(base string) []abuseJunkCase {
	get := func(rawQuery string, auth ...string) func() *http.Request {
		return func() *http.Request {
			req, _ := http.NewRequest(http.MethodGet, base+"/auth", nil)
			req.URL.RawQuery = rawQuery
			for _, a := range auth {
				req.Header.Add("Authorization", a)
			}
			return req
		}
	}
	post := func(contentType, body string) func() *http.Request {
		return func() *http.Request {
			req, _ := http.NewRequest(http.MethodPost, base+"/auth", strings.NewReader(body))
			if contentType != "" {
				req.Header.Set("Content-Type", contentType)
			}
			return req
		}
	}
	method := func(m, path string) func() *http.Request {
		return func() *http.Request {
			req, _ := http.NewRequest(m, base+path, nil)
			return req
		}
	}
	const svc = "service=registry.example.com"
	const scope = "&scope=repository:junk/app:pull"
	var many []string
	for i := range 2000 {
		many = append(many, fmt.Sprintf("repository:r%d:pull", i))
	}
	manyScopes := strings.Join(many, " ")
	form := "application/x-www-form-urlencoded"
	b64 := base64.StdEncoding.EncodeToString
	return []abuseJunkCase{
		{"Basic not base64", 400, get(svc+scope, "Basic !!!not*base64!!!")},
		{"Basic without colon", 400, get(svc+scope, "Basic "+b64([]byte("no-colon-here")))},
		{"Basic empty", 400, get(svc+scope, "Basic")},
		{"Basic binary garbage", 400, get(svc+scope, "Basic "+b64([]byte{0xff, 0xfe, 0x00, 0x01}))},
		{"Bearer empty", 400, get(svc+scope, "Bearer ")},
		{"unknown scheme", 400, get(svc+scope, "Digest username=x")},
		{"two Authorization headers", 400, get(svc+scope, "Basic "+b64([]byte("a:b")), "Bearer x")},
		{"account not the Basic user", 400, get(svc+scope+"&account=someone-else", "Basic "+b64([]byte("junk:pw")))},
		{"invalid scope", 400, get(svc + "&scope=not-a-scope")},
		{"scope with a bad action", 400, get(svc + "&scope=repository:a/b:pu$ll")},
		{"scope with NUL", 400, get(svc + "&scope=repository:a%00b:pull")},
		{"huge scope name", 400, get(svc + "&scope=repository:" + strings.Repeat("a", 20000) + ":pull")},
		{"huge action list", 400, get(svc + "&scope=repository:a/b:" + strings.Repeat("pull,", 4000) + "*!")},
		{"2,000 scopes in GET", 400, get(svc + "&scope=" + url.QueryEscape(manyScopes))},
		{"2,000 scopes in POST", 400, post(form, "grant_type=password&username=junk&password=pw&"+svc+"&scope="+url.QueryEscape(manyScopes))},
		{"oversized POST body", 413, post(form, "grant_type=password&username=junk&password="+strings.Repeat("x", 100<<10))},
		{"POST not a form", 415, post("application/json", `{"grant_type":"password"}`)},
		{"POST bad form escape", 400, post(form, "grant_type=%zz")},
		{"POST without grant_type", 400, post(form, svc)},
		{"POST unknown grant_type", 400, post(form, "grant_type=client_credentials")},
		{"bad query escape", 400, get(svc + "&scope=%zz")},
		{"bad query escape at the end", 400, get(svc + "&scope=%")},
		{"query over max_query_bytes", 414, get(svc + "&scope=" + strings.Repeat("a", 70000))},
		{"unknown service", 400, get("service=evil.example.com" + scope)},
		{"service twice", 400, get(svc + "&" + svc + scope)},
		{"unknown path", 404, method(http.MethodGet, "/v2/")},
		{"unknown path under /auth", 404, method(http.MethodGet, "/auth/extra")},
		{"unknown path, not UTF-8", 404, method(http.MethodGet, "/%ff%fe%00")},
		{"PUT /auth", 405, method(http.MethodPut, "/auth")},
		{"DELETE /auth", 405, method(http.MethodDelete, "/auth")},
		{"PATCH /healthz", 404, method(http.MethodPatch, "/healthz")},
	}
}

// TestAbuseLoad runs good logins, brute-force attempts from several
// addresses, malformed requests and bursts past limits.max_concurrent
// against one server for a bounded time, then checks that good logins all
// got their tokens, only attackers were throttled, malformed requests got
// JSON 4xx, nothing but the deliberate 503 was a 5xx, and memory stayed
// bounded.
func TestAbuseLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("load test: skipped with -short")
	}
	meta := fakemeta.Start(t)
	srhtToken := meta.Mint(fakemeta.TokenOptions{Username: "dora", Grants: "registry.example.com/REGISTRY:RW",
		Expires: time.Now().Add(time.Hour), ClientID: "builds.sr.ht"})

	// Good users each log in from their own address.
	type goodUser struct{ user, password, addr string }
	good := []goodUser{
		{"anna", "anna-load-password-1", "192.0.2.11"},
		{"ben", "ben-load-password-2", "192.0.2.12"},
		{"cleo", "cleo-load-password-3", "192.0.2.13"},
		{"sourcehut", srhtToken, "192.0.2.20"}, // dora's Sourcehut token, as a CI job sends it
	}
	goodSubject := map[string]string{"anna": "anna", "ben": "ben", "cleo": "cleo", "sourcehut": "dora"}
	// Attackers guess passwords of other users: each targets one real
	// user ("victimN", a real bcrypt check) and unknown names (the dummy
	// hash). Per-user counting would lock out a good user whose name the
	// attackers guessed at, by design (see authn.Throttle); so they leave
	// the good users alone, and only per-address throttling is shown here.
	attackers := []string{"203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4", "203.0.113.5"}
	const junkAddr = "198.51.100.66"
	const floodAddr = "198.51.100.99"

	dir := t.TempDir()
	htpasswd := filepath.Join(dir, "htpasswd")
	var lines strings.Builder
	for _, g := range good[:3] {
		lines.WriteString(htpasswdLine(t, g.user, g.password))
	}
	for i := range attackers {
		lines.WriteString(htpasswdLine(t, fmt.Sprintf("victim%d", i+1), fmt.Sprintf("victim-password-%d", i+1)))
	}
	writeFile(t, htpasswd, lines.String())
	cfg := filepath.Join(dir, "config.yaml")
	writeFile(t, cfg, fmt.Sprintf(`listen: 127.0.0.1:0
trusted_proxies: [127.0.0.1/32]
brute_force:
  threshold: %d
  window: 1m
limits:
  max_concurrent: %d
  max_query_bytes: 65536   # so 2,000 scopes reach the scope parser
  max_header_bytes: 131072 # the request line counts against it
  max_body_bytes: 65536
log:
  level: info
authn:
  htpasswd: %s
  sourcehut:
    meta_url: %s
    timeout: 2s
    users: ["*"]
`, abuseThreshold, abuseMaxConcurrent, htpasswd, meta.URL()))
	srv, logs := startServer(t, cfg)
	addr := srv.Addr()
	base := "http://" + addr

	tr := &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: 30 * time.Second}
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	t.Cleanup(tr.CloseIdleConnections)

	goodRequest := func(g goodUser) *http.Request {
		q := url.Values{"service": {"registry.example.com"}, "scope": {"repository:" + goodSubject[g.user] + "/app:pull,push"}}
		req, _ := http.NewRequest(http.MethodGet, base+"/auth?"+q.Encode(), nil)
		req.SetBasicAuth(g.user, g.password)
		req.Header.Set("X-Forwarded-For", g.addr)
		return req
	}
	// Warm up: each good login works, and dora's token is validated (and
	// cached) before the load starts.
	for _, g := range good {
		if r := abuseDo(client, goodRequest(g)); r.status != http.StatusOK {
			t.Fatalf("warm-up login of %s: %d %s %v", g.user, r.status, r.body, r.err)
		}
	}
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	goroutinesBefore := runtime.NumGoroutine()

	tally := &abuseTally{byClass: map[string]map[int]int{}, byAddr: map[string]map[int]int{}}
	deadline := time.Now().Add(abuseDuration)
	var wg sync.WaitGroup
	var goodLogins, goodRetries atomic.Int64

	// Heap samples while the load runs (no GC forced: the peak as it is).
	var peakHeap atomic.Uint64
	sampleDone := make(chan struct{})
	go func() {
		defer close(sampleDone)
		for time.Now().Before(deadline) {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peakHeap.Load() {
				peakHeap.Store(m.HeapInuse)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()

	// Good logins: every login must end in 200 with the token granting
	// the user's namespace. A deliberate 503 (load shed during a flood) is
	// retried, as a client honouring Retry-After would; anything else
	// fails the login.
	for _, g := range good {
		for range 2 {
			wg.Go(func() {
				for i := 0; i < abuseGoodMax && time.Now().Before(deadline); i++ {
					var r abuseResp
					for attempt := 0; ; attempt++ {
						r = abuseDo(client, goodRequest(g))
						tally.add("good", g.addr, r)
						if !abuseShed(r) || attempt >= 500 {
							break
						}
						goodRetries.Add(1)
						time.Sleep(5 * time.Millisecond)
					}
					if r.status != http.StatusOK {
						tally.problem("good login of %s from %s: %d %.300s %v", g.user, g.addr, r.status, r.body, r.err)
						continue
					}
					acc, err := abuseTokenAccess(r.body)
					want := goodSubject[g.user] + "/app"
					if err != nil || len(acc) != 1 || acc[0].Name != want || !slices.Equal(acc[0].Actions, []string{"pull", "push"}) {
						tally.problem("good login of %s: token grants %+v (%v), want pull,push on %s", g.user, acc, err, want)
						continue
					}
					goodLogins.Add(1)
				}
			})
		}
	}

	// Attackers: wrong passwords, two workers per address. Answers are
	// 401 until the address passes the threshold, then 429.
	// An address not yet throttled at the deadline (a slow machine, -race:
	// a failed check costs a bcrypt at the file's highest cost) keeps going
	// until it is, within a hard limit.
	var attackSeq atomic.Int64
	hardDeadline := deadline.Add(30 * time.Second)
	for n, ip := range attackers {
		var throttled atomic.Bool
		for range abuseWorkersPerIP {
			wg.Go(func() {
				for i := 0; i < abuseAttackMax; i++ {
					if now := time.Now(); !now.Before(hardDeadline) || !now.Before(deadline) && throttled.Load() {
						break
					}
					seq := attackSeq.Add(1)
					user := fmt.Sprintf("victim%d", n+1)
					if seq%4 == 0 {
						user = fmt.Sprintf("nobody-%d", seq) // a fresh unknown name each time
					}
					req, _ := http.NewRequest(http.MethodGet, base+"/auth?service=registry.example.com&scope=repository:"+user+"/app:pull", nil)
					req.SetBasicAuth(user, fmt.Sprintf("guess-%d", seq))
					req.Header.Set("X-Forwarded-For", ip)
					r := abuseDo(client, req)
					tally.add("attacker", ip, r)
					switch {
					case r.err != nil || abuseShed(r):
					case r.status == http.StatusUnauthorized:
						if _, _, ok := abuseErrorJSON(r); !ok || r.header.Get("WWW-Authenticate") == "" {
							tally.problem("attacker 401 without a JSON error or WWW-Authenticate: %v %s", r.header, r.body)
						}
					case r.status == http.StatusTooManyRequests:
						throttled.Store(true)
						ra, err := strconv.Atoi(r.header.Get("Retry-After"))
						if err != nil || ra < 1 || ra > 60 {
							tally.problem("attacker 429 with Retry-After %q, want 1..60 s", r.header.Get("Retry-After"))
						}
						if code, _, ok := abuseErrorJSON(r); !ok || code != "TOOMANYREQUESTS" {
							tally.problem("attacker 429 body: %s", r.body)
						}
					default:
						tally.problem("attacker from %s got %d: %.300s", ip, r.status, r.body)
					}
					// Paced, so the attack spans the run (and meets the floods)
					// instead of spending its count in the first second.
					time.Sleep(8 * time.Millisecond)
				}
			})
		}
	}

	// Malformed requests, from one address, two workers.
	cases := abuseJunkCases(base)
	for w := range 2 {
		wg.Go(func() {
			for round := 0; round < abuseJunkRounds && time.Now().Before(deadline); round++ {
				for i := range cases {
					c := cases[(i+w*len(cases)/2)%len(cases)]
					req := c.build()
					req.Header.Set("X-Forwarded-For", junkAddr)
					r := abuseDo(client, req)
					tally.add("junk", junkAddr, r)
					if r.err != nil || abuseShed(r) {
						continue
					}
					if _, _, ok := abuseErrorJSON(r); r.status != c.status || !ok {
						tally.problem("junk %q: got %d (%s) %.200s, want %d with a JSON error", c.name, r.status, r.header.Get("Content-Type"), r.body, c.status)
					}
				}
			}
		})
	}

	// Floods: bursts of slow POSTs past limits.max_concurrent. Each waits
	// for 100-continue, so the ones admitted hold their slot while their
	// body is withheld, and the rest are shed at once with 503.
	var floods, floodShed atomic.Int64
	wg.Go(func() {
		floodTr := &http.Transport{DisableKeepAlives: true, ExpectContinueTimeout: 20 * time.Second}
		defer floodTr.CloseIdleConnections()
		floodClient := &http.Client{Transport: floodTr, Timeout: 30 * time.Second}
		// A grant type refused before any credential is looked at: the
		// flood tests admission, not the throttle.
		const body = "grant_type=client_credentials&client_secret=flood"
		for _, at := range []time.Duration{time.Second, 2500 * time.Millisecond, 4 * time.Second} {
			if d := time.Until(deadline.Add(-abuseDuration).Add(at)); d > 0 {
				time.Sleep(d)
			}
			floods.Add(1)
			var burst sync.WaitGroup
			var shedNow atomic.Int64
			writers := make([]*io.PipeWriter, abuseFloodSize)
			for i := range abuseFloodSize {
				pr, pw := io.Pipe()
				writers[i] = pw
				req, _ := http.NewRequest(http.MethodPost, base+"/auth", pr)
				req.ContentLength = int64(len(body))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("Expect", "100-continue")
				req.Header.Set("X-Forwarded-For", floodAddr)
				burst.Go(func() {
					r := abuseDo(floodClient, req)
					pr.Close()
					tally.add("flood", floodAddr, r)
					switch {
					case r.err != nil:
					case abuseShed(r):
						shedNow.Add(1)
					case r.status == http.StatusBadRequest:
						// Admitted, then refused: an unsupported grant type.
					default:
						tally.problem("flood request got %d: %.300s", r.status, r.body)
					}
				})
			}
			// At most max_concurrent can hold a slot: the rest must
			// have been shed before any body is sent.
			waitUntil := time.Now().Add(10 * time.Second)
			for shedNow.Load() < abuseFloodSize-abuseMaxConcurrent && time.Now().Before(waitUntil) {
				time.Sleep(5 * time.Millisecond)
			}
			if n := shedNow.Load(); n < abuseFloodSize-abuseMaxConcurrent {
				tally.problem("flood of %d: only %d shed with 503, want at least %d", abuseFloodSize, n, abuseFloodSize-abuseMaxConcurrent)
			}
			time.Sleep(100 * time.Millisecond) // the other clients meet the full server too
			for _, pw := range writers {
				go func() {
					_, _ = io.WriteString(pw, body)
					pw.Close()
				}()
			}
			burst.Wait()
			floodShed.Add(shedNow.Load())
		}
	})

	wg.Wait()
	<-sampleDone
	tr.CloseIdleConnections()

	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)

	// The summary.
	statuses := map[int]bool{}
	for _, m := range tally.byClass {
		for s := range maps.Keys(m) {
			statuses[s] = true
		}
	}
	cols := slices.Sorted(maps.Keys(statuses))
	var table strings.Builder
	fmt.Fprintf(&table, "%-9s", "class")
	for _, s := range cols {
		label := strconv.Itoa(s)
		if s == 0 {
			label = "err"
		}
		fmt.Fprintf(&table, " %7s", label)
	}
	table.WriteString("   total\n")
	for _, class := range []string{"good", "attacker", "junk", "flood"} {
		fmt.Fprintf(&table, "%-9s", class)
		total := 0
		for _, s := range cols {
			n := tally.byClass[class][s]
			total += n
			fmt.Fprintf(&table, " %7d", n)
		}
		fmt.Fprintf(&table, " %7d\n", total)
	}
	t.Logf("answers by class and status over %v:\n%s", abuseDuration, table.String())
	t.Logf("good logins completed: %d (%d retries after a deliberate 503); floods: %d, %d flood requests shed",
		goodLogins.Load(), goodRetries.Load(), floods.Load(), floodShed.Load())
	for _, ip := range attackers {
		t.Logf("attacker %s: %d × 401, %d × 429, %d × 503", ip,
			tally.byAddr[ip][401], tally.byAddr[ip][429], tally.byAddr[ip][503])
	}
	const mib = 1 << 20
	t.Logf("heap in use after GC: %.1f MiB before, %.1f MiB after (%+.1f MiB, of which the captured log is %.1f MiB); peak sampled during the run %.1f MiB; goroutines %d before, %d after",
		float64(before.HeapInuse)/mib, float64(after.HeapInuse)/mib,
		(float64(after.HeapInuse)-float64(before.HeapInuse))/mib, float64(len(logs.String()))/mib,
		float64(peakHeap.Load())/mib, goroutinesBefore, runtime.NumGoroutine())

	// Every check made while the load ran.
	for _, p := range tally.problems {
		t.Error(p)
	}
	if tally.nProb > len(tally.problems) {
		t.Errorf("… and %d more problems", tally.nProb-len(tally.problems))
	}

	if goodLogins.Load() == 0 {
		t.Error("no good login completed")
	}
	for _, g := range good {
		for s, n := range tally.byAddr[g.addr] {
			if s != http.StatusOK && s != http.StatusServiceUnavailable {
				t.Errorf("good address %s (%s) got %d × %d", g.addr, g.user, n, s)
			}
		}
	}
	// 429s only for the attacking addresses, each of which got one after
	// its threshold, and no password was checked much past it.
	for a, m := range tally.byAddr {
		if m[http.StatusTooManyRequests] > 0 && !slices.Contains(attackers, a) {
			t.Errorf("%s is not an attacker but got %d × 429", a, m[http.StatusTooManyRequests])
		}
	}
	for _, ip := range attackers {
		n401, n429 := tally.count(tally.byAddr, ip, 401), tally.count(tally.byAddr, ip, 429)
		if n429 == 0 {
			t.Errorf("attacker %s was never throttled (%d × 401)", ip, n401)
		}
		if n401 < abuseThreshold || n401 > abuseThreshold+abuseWorkersPerIP-1 {
			t.Errorf("attacker %s had %d passwords checked (401), want %d..%d: the threshold, plus what was in flight",
				ip, n401, abuseThreshold, abuseThreshold+abuseWorkersPerIP-1)
		}
	}
	if tally.byClass["junk"][0]+tally.byClass["junk"][400] == 0 {
		t.Error("no malformed request was answered")
	}
	if floodShed.Load() == 0 {
		t.Error("no request was shed with 503: the limit was not reached")
	}

	// The server's own account agrees: its 429 lines name attackers only
	// (X-Forwarded-For from the trusted proxy believed), and it logged no
	// 5xx but the 503s.
	log := logs.String()
	client429 := 0
	for _, ip := range attackers {
		client429 += tally.byAddr[ip][429]
	}
	re429 := regexp.MustCompile(`msg=request .*status=429 .*client_ip=(\S+)`)
	logged429 := re429.FindAllStringSubmatch(log, -1)
	for _, m := range logged429 {
		if !slices.Contains(attackers, m[1]) {
			t.Errorf("the server logged a 429 for %s, not an attacker", m[1])
			break
		}
	}
	if len(logged429) != client429 {
		t.Errorf("the server logged %d × 429, the clients saw %d", len(logged429), client429)
	}
	if m := regexp.MustCompile(`msg=request .*status=5(0[0-24-9]|[1-9]\d)`).FindString(log); m != "" {
		t.Errorf("the server logged a 5xx other than 503: %.300s", m)
	}
	if strings.Contains(log, "panic") {
		t.Error("the log mentions a panic")
	}

	// Memory stayed bounded.
	if after.HeapInuse > abuseHeapBound {
		t.Errorf("heap in use after GC is %.1f MiB, want < %d MiB", float64(after.HeapInuse)/mib, abuseHeapBound/mib)
	}
	if after.HeapInuse > before.HeapInuse && after.HeapInuse-before.HeapInuse > abuseHeapGrowth {
		t.Errorf("heap in use grew by %.1f MiB, want < %d MiB", float64(after.HeapInuse-before.HeapInuse)/mib, abuseHeapGrowth/mib)
	}
}
