// Package ldap owns directory logins: a user of an LDAP directory
// (OpenLDAP, Active Directory) proves a password by binding as its entry,
// found with a search made as the configured service account. It owns the
// filter templates ({user}, {dn}, escaped per RFC 4515), the connections
// (failover across the configured URLs in order, timeouts, a bounded pool),
// reading the subject attribute and the groups (a group search or the
// entry's memberOf), qualifying group names by the provider ("corp:devs"),
// remembering successful logins for a short TTL (keyed by an HMAC, never
// the password), and looking a user up again for its refresh tokens. A
// directory that cannot be asked is identity.ErrUnavailable, never a grant.
package ldap
