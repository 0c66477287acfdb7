package slapdtest

import (
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // {SSHA} is what slapd stores by default: test data only
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goldap "github.com/go-ldap/ldap/v3"
)

// The directory every Server holds.
const (
	Suffix    = "dc=example,dc=org"
	People    = "ou=people," + Suffix
	Groups    = "ou=groups," + Suffix
	RootDN    = "cn=admin," + Suffix
	RootPW    = "slapdtest-root-secret"
	ReaderDN  = "cn=reader," + Suffix
	ReaderPW  = "slapdtest-reader-secret"
	schemaDir = "/etc/ldap/schema"
	moduleDir = "/usr/lib/ldap"
)

// User is an account of the test directory.
type User struct {
	UID      string
	Password string // "" = no userPassword: no bind can succeed
	Mail     string
	Disabled bool // employeeType: disabled
}

// Users are the accounts: lena (devs, ops), mika (devs), carol (no group),
// dave (disabled, in devs), erin (no password, in devs), admin (ops) and
// alice (devs; a name the end-to-end tests' htpasswd file also has).
var Users = []User{
	{UID: "lena", Password: "lena-ldap-secret-1", Mail: "lena@example.org"},
	{UID: "mika", Password: "mika-ldap-secret-2", Mail: "mika@example.org"},
	{UID: "carol", Password: "carol-ldap-secret-3", Mail: "carol@example.org"},
	{UID: "dave", Password: "dave-ldap-secret-4", Mail: "dave@example.org", Disabled: true},
	{UID: "erin", Mail: "erin@example.org"},
	{UID: "admin", Password: "admin-ldap-secret-5", Mail: "admin@example.org"},
	{UID: "alice", Password: "alice-ldap-secret-6", Mail: "alice@example.org"},
}

// Password is the password of the user uid.
func Password(uid string) string {
	for _, u := range Users {
		if u.UID == uid {
			return u.Password
		}
	}
	return ""
}

// GroupMembers are the groups and their members' uids.
var GroupMembers = map[string][]string{
	"devs": {"lena", "mika", "dave", "erin", "alice"},
	"ops":  {"lena", "admin"},
}

// UserDN is the DN of the user uid.
func UserDN(uid string) string { return "uid=" + uid + "," + People }

// GroupDN is the DN of the group cn.
func GroupDN(cn string) string { return "cn=" + cn + "," + Groups }

// Server is a running slapd.
type Server struct {
	URL  string // ldap://127.0.0.1:PORT
	Addr string
	bin  string
	conf string

	mu  sync.Mutex
	cmd *exec.Cmd
}

// Find returns the slapd binary, or an error saying how to install it.
func Find() (string, error) {
	if bin, err := exec.LookPath("slapd"); err == nil {
		return bin, nil
	}
	for _, p := range []string{"/usr/sbin/slapd", "/usr/local/libexec/slapd"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("slapd is not installed (apt-get install slapd ldap-utils)")
}

// Require returns the slapd binary, or skips t (fails it under CI).
func Require(t testing.TB) string {
	t.Helper()
	bin, err := Find()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v, and CI is set", err)
		}
		t.Skip(err.Error())
	}
	return bin
}

// Start starts a slapd with the test directory, stopped at the end of t.
func Start(t testing.TB) *Server {
	t.Helper()
	Require(t)
	s, err := Launch(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Launch starts a slapd with the test directory in dir (which must exist
// and be empty), for harnesses without a testing.T; the caller stops it.
func Launch(dir string) (*Server, error) {
	bin, err := Find()
	if err != nil {
		return nil, err
	}
	if err := os.Mkdir(filepath.Join(dir, "data"), 0o700); err != nil {
		return nil, err
	}
	s := &Server{bin: bin, conf: filepath.Join(dir, "slapd.conf")}
	if err := os.WriteFile(s.conf, []byte(fmt.Sprintf(`include %[1]s/core.schema
include %[1]s/cosine.schema
include %[1]s/inetorgperson.schema
include %[1]s/nis.schema
modulepath %[2]s
moduleload back_mdb
moduleload memberof
pidfile %[3]s/slapd.pid
argsfile %[3]s/slapd.args
database mdb
maxsize 10485760
suffix "%[4]s"
rootdn "%[5]s"
rootpw %[6]s
directory %[3]s/data
overlay memberof
access to attrs=userPassword by anonymous auth by * none
access to * by users read by * none
`, schemaDir, moduleDir, dir, Suffix, RootDN, RootPW)), 0o600); err != nil {
		return nil, err
	}
	ldif := filepath.Join(dir, "base.ldif")
	if err := os.WriteFile(ldif, []byte(baseLDIF()), 0o600); err != nil {
		return nil, err
	}
	slapadd := filepath.Join(filepath.Dir(bin), "slapadd")
	if out, err := exec.Command(slapadd, "-f", s.conf, "-l", ldif).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("slapadd: %w\n%s", err, out)
	}
	if s.Addr, err = freeAddr(); err != nil {
		return nil, err
	}
	s.URL = "ldap://" + s.Addr
	if err := s.start(); err != nil {
		return nil, err
	}
	// Groups are added through the server, so memberof fills memberOf.
	if err := s.addGroups(); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func (s *Server) addGroups() error {
	c, err := s.root()
	if err != nil {
		return err
	}
	defer c.Close()
	for _, cn := range []string{"devs", "ops"} {
		add := goldap.NewAddRequest(GroupDN(cn), nil)
		add.Attribute("objectClass", []string{"groupOfNames"})
		add.Attribute("cn", []string{cn})
		var members []string
		for _, uid := range GroupMembers[cn] {
			members = append(members, UserDN(uid))
		}
		add.Attribute("member", members)
		if err := c.Add(add); err != nil {
			return fmt.Errorf("add group %s: %w", cn, err)
		}
	}
	return nil
}

func (s *Server) start() error {
	cmd := exec.Command(s.bin, "-f", s.conf, "-h", s.URL+"/", "-d", "0")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start slapd: %w", err)
	}
	s.mu.Lock()
	s.cmd = cmd
	s.mu.Unlock()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			s.Stop()
			return fmt.Errorf("slapd did not listen on %s: %w", s.Addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop stops slapd (a test can stop it mid-run); a stopped Server stops
// again without harm.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd := s.cmd
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
}

// Restart starts a stopped slapd again, on the same port with the same
// data.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
}

func (s *Server) root() (*goldap.Conn, error) {
	c, err := goldap.DialURL(s.URL)
	if err != nil {
		return nil, err
	}
	if err := c.Bind(RootDN, RootPW); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Root is a connection bound as the directory's root, to change it.
func (s *Server) Root(t testing.TB) *goldap.Conn {
	t.Helper()
	c, err := s.root()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// RemoveMember takes the user uid out of the group cn.
func (s *Server) RemoveMember(t testing.TB, cn, uid string) {
	t.Helper()
	c := s.Root(t)
	defer c.Close()
	m := goldap.NewModifyRequest(GroupDN(cn), nil)
	m.Delete("member", []string{UserDN(uid)})
	if err := c.Modify(m); err != nil {
		t.Fatalf("remove %s from %s: %v", uid, cn, err)
	}
}

// Disable marks the user uid disabled (employeeType: disabled).
func (s *Server) Disable(t testing.TB, uid string) {
	t.Helper()
	c := s.Root(t)
	defer c.Close()
	m := goldap.NewModifyRequest(UserDN(uid), nil)
	m.Replace("employeeType", []string{"disabled"})
	if err := c.Modify(m); err != nil {
		t.Fatalf("disable %s: %v", uid, err)
	}
}

func baseLDIF() string {
	var b strings.Builder
	fmt.Fprintf(&b, "dn: %s\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n", Suffix)
	fmt.Fprintf(&b, "dn: %s\nobjectClass: organizationalUnit\nou: people\n\n", People)
	fmt.Fprintf(&b, "dn: %s\nobjectClass: organizationalUnit\nou: groups\n\n", Groups)
	fmt.Fprintf(&b, "dn: %s\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: reader\nuserPassword: %s\n\n", ReaderDN, ssha(ReaderPW))
	for _, u := range Users {
		fmt.Fprintf(&b, "dn: %s\nobjectClass: inetOrgPerson\nuid: %s\ncn: %s\nsn: %s\nmail: %s\n", UserDN(u.UID), u.UID, u.UID, u.UID, u.Mail)
		if u.Password != "" {
			fmt.Fprintf(&b, "userPassword: %s\n", ssha(u.Password))
		}
		if u.Disabled {
			b.WriteString("employeeType: disabled\n")
		}
		b.WriteString("\n")
	}
	return b.String()
}

// ssha is the {SSHA} hash of pw, as slappasswd makes it.
func ssha(pw string) string {
	salt := make([]byte, 8)
	_, _ = rand.Read(salt)
	h := sha1.New() //nolint:gosec // see the import
	h.Write([]byte(pw))
	h.Write(salt)
	return "{SSHA}" + base64.StdEncoding.EncodeToString(append(h.Sum(nil), salt...))
}

// FreeAddr is a loopback host:port nothing listens on (a closed port,
// for failover tests).
func FreeAddr(t testing.TB) string {
	t.Helper()
	addr, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return "127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port), nil
}
