// Package suggest finds the name a mistyped one was meant to be, for the
// "did you mean" of an unknown config key, policy data key or command.
package suggest
