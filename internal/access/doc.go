// Package access owns the Docker registry scope grammar: parsing the scope
// strings a client sends, the Resource they name, the rule that turns the
// actions a policy allows into the actions actually granted, and Token, the
// signed bearer token that carries them back. It is a leaf package (standard
// library only) shared by the server, authz and token.
package access
