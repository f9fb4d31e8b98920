# Sourced by tests/e2e/control_plane/build.sh and tests/e2e/node/build.sh: builds commands of
# k8s.io/kubernetes at $K8S_VERSION from Go modules (its staging repos pinned to
# $STAGING_VERSION, as the module itself cannot resolve them), with the version stamped in as a
# release build has it.
#   build_k8s_cmds <dir> <out-dir> <cmd>...   e.g. build_k8s_cmds "$work/k8s" "$work/out" kubelet
build_k8s_cmds() {
  local dir=$1 out=$2
  shift 2
  mkdir -p "$dir" "$out"
  local staging="api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider
    cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api cri-client
    cri-streaming csi-translation-lib dynamic-resource-allocation endpointslice externaljwt kms kube-aggregator
    kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics mount-utils pod-security-admission
    sample-apiserver sample-cli-plugin sample-controller streaming"
  (
    cd "$dir"
    {
      echo "module e2e.local/k8s"
      echo
      echo "go 1.26"
      echo
      echo "require k8s.io/kubernetes $K8S_VERSION"
      echo
      for m in $staging; do echo "replace k8s.io/$m => k8s.io/$m $STAGING_VERSION"; done
    } >go.mod
    {
      printf '//go:build tools\n\npackage tools\n\nimport (\n'
      for c in "$@"; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$c"; done
      printf ')\n'
    } >tools.go
    go mod tidy >&2
    local minor="${K8S_VERSION#v1.}"
    minor="${minor%%.*}"
    local ld="-s -w" p
    for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ld="$ld -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
    done
    local pkgs=()
    for c in "$@"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
    go build -p 2 -trimpath -ldflags "$ld" -o "$out/" "${pkgs[@]}" >&2
  )
}
