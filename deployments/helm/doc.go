// Package helm holds no code: its test validates the nkudo chart
// (deployments/helm/nkudo) offline with Helm v4 itself (`helm lint`,
// `helm template`, run through `go run helm.sh/helm/v4/cmd/helm@v4.3.2`,
// so no helm binary needs installing) and decodes every rendered manifest
// strictly into the Kubernetes API types of k8s.io/api: a misspelt or
// misplaced field fails the test instead of being dropped by the API
// server.
package helm
