package helm_test

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The chart renders two custom resources whose Go types live in modules
// this project does not import (prometheus-operator, CloudNativePG). These
// structs mirror the fields the chart sets, with the JSON names of the
// upstream types; strict decoding then refuses a field the chart adds
// that is not mirrored here, so a new field means checking it upstream.

// serviceMonitor mirrors monitoring.coreos.com/v1 ServiceMonitor
// (prometheus-operator pkg/apis/monitoring/v1/servicemonitor_types.go:
// ServiceMonitorSpec's selector, namespaceSelector and endpoints, and
// types.go's Endpoint and NamespaceSelector).
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              struct {
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector struct {
			Any        bool     `json:"any,omitempty"`
			MatchNames []string `json:"matchNames,omitempty"`
		} `json:"namespaceSelector,omitempty"`
		Endpoints []struct {
			Port          string `json:"port,omitempty"`
			Path          string `json:"path,omitempty"`
			Scheme        string `json:"scheme,omitempty"`
			Interval      string `json:"interval,omitempty"`
			ScrapeTimeout string `json:"scrapeTimeout,omitempty"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// cnpgCluster mirrors postgresql.cnpg.io/v1 Cluster (cloudnative-pg
// api/v1/cluster_types.go: ClusterSpec's instances, storage,
// bootstrap.initdb and postgresql.parameters). The operator writes the
// application Secret <name>-app with a `uri` key (pkg/specs/secrets.go).
type cnpgCluster struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              struct {
		Instances int32 `json:"instances"`
		Storage   struct {
			Size         string `json:"size,omitempty"`
			StorageClass string `json:"storageClass,omitempty"`
		} `json:"storage,omitempty"`
		Bootstrap struct {
			InitDB struct {
				Database string `json:"database,omitempty"`
				Owner    string `json:"owner,omitempty"`
			} `json:"initdb"`
		} `json:"bootstrap"`
		PostgreSQL struct {
			Parameters map[string]string `json:"parameters,omitempty"`
		} `json:"postgresql,omitempty"`
	} `json:"spec"`
}
