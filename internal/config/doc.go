// Package config owns kasync's YAML configuration: its Go types, the defaults of
// DESIGN.md, strict decoding with ${VAR} expansion, and a validation that reports every
// problem at once. It imports no other kasync package; cmd/kasync loads a Config and
// hands the parts to the packages that use them.
//
// A caller:
//
//  1. Calls Load(path) or Parse(data, source). Both expand the environment, decode,
//     apply WithDefaults and Validate, and return a ready Config or an error.
//  2. Treats any error as bad configuration (exit status 2). Problems with the content
//     come back as *Problems (errors.As), each naming its key path, its line and what
//     would be right; I/O errors are wrapped ("config: read FILE: ...").
//  3. Prints or logs a Config only through String, YAML or Redacted, never field by field.
//  4. When building a Config in code, calls WithDefaults and then Validate itself.
//
// The package guarantees:
//
//  1. Unknown keys are errors, each with its line and key path, and a suggestion when a
//     known key is close ("did you mean ...").
//  2. A Config returned by Parse or Load is valid: every rule of Validate holds, so the
//     packages it configures may rely on positive durations, concurrency and windows of
//     at least 1, unique names, Kafka-legal topics, and tailers that name configured
//     functions.
//  3. A key set explicitly to 0 (or an empty list) where 0 is invalid is an error, never
//     silently replaced by the default; only absent keys get defaults. delay.tolerance is
//     the one key where 0 is valid yet cannot be written: its default (half the smallest
//     rung) is derived from the rungs, so an explicit 0 is refused rather than replaced.
//  4. Expansion: ${VAR} is the variable's value, and an unset one is an error naming the
//     variable and the line; ${VAR:-default} uses default when VAR is unset or empty; $$
//     is a literal $; a lone $ is kept; comments are not expanded.
//  5. Exactly one YAML document: an empty file and a file with several documents are errors.
//  6. Redacted, String and YAML never contain a secret (the SASL password, passwords in URLs).
//     gRPC tokens are never in a Config at all: node.grpc_auth.tokens_file and
//     node.scheduler_token_file are paths, and no problem (nor LoadTokens' error, nor
//     Token.String) quotes a token, only its line and identity. (TestSecurityValidation,
//     TestSecurityConfigParses, TestLoadTokens)
//  7. Parse never panics, whatever the input (FuzzParse).
//  8. Durations always carry a unit. "infinite" (Infinite, the same value as
//     delaystreams.RetentionInfinite) is accepted only by dead_letter.min_retention;
//     every other duration reports it as not allowed there.
//  9. Security settings are checked as a whole: TLS files exist, a key has its
//     certificate, grpc_auth authenticates somebody (tokens_file or grpc_tls.client_ca_file),
//     tokens are never configured without TLS on either side, the tokens file parses
//     (identity and token per line, tokens of at least MinTokenLength characters, no
//     token shared by two lines), and identities name configured functions (or "*").
package config
