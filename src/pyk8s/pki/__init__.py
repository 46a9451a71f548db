"""The cluster's PKI: certificates and kubeconfig files (used by the API server and later
by kubeadm and the kubelet)."""
