// Package identity owns the identity document handed to policy: who the
// client is (Identity), what it asked through (Request), the credentials it
// presented (Credentials, whose secrets redact themselves), and the two error
// kinds every authenticator reports: the client is not who it claims
// (ErrUnauthenticated), or we could not find out (ErrUnavailable). It also
// owns the principal: the pair (provider, subject), written
// "<provider>:<subject>", by which everything configured names a person.
// It is a leaf package: standard library only.
package identity
