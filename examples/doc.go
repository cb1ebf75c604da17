// Package examples holds no code of its own: its tests tie the example
// programs (authservice, subscriber) and the READMEs' Go snippets to code
// that runs. The catalog test publishes the seed's auth-service event
// catalog through the example service and receives it through the example
// subscriber; the README test checks that every Go snippet of README.md and
// pkg/events/README.md is the body of an example or test that runs.
package examples
