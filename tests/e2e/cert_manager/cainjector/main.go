// A minimal cert-manager CA injector for the e2e tests, built from the cert-manager Go module's
// cainjector packages (the module's cmd/* programs are separate modules that the Go module proxy
// does not serve). It runs only the MutatingWebhookConfiguration reconciler, with the
// Certificate data source that `cert-manager.io/inject-ca-from` uses, like cert-manager's own
// cainjector. Usage: cainjector --kubeconfig FILE
package main

import (
	"context"
	"flag"
	"os"
	"os/signal"
	"syscall"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	"github.com/cert-manager/cert-manager/pkg/controller/cainjector"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

func main() {
	opts := zap.Options{Development: true}
	opts.BindFlags(flag.CommandLine)
	flag.Parse() // --kubeconfig is registered by controller-runtime's config package
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))
	log := ctrl.Log.WithName("cainjector")

	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, admissionv1.AddToScheme, cmapi.AddToScheme,
	} {
		if err := add(scheme); err != nil {
			log.Error(err, "scheme")
			os.Exit(1)
		}
	}
	cfg := ctrl.GetConfigOrDie()
	// The injector's server-side apply field manager is taken from the user agent, as in
	// cert-manager's own binary; an empty one makes every apply fail.
	cfg.UserAgent = "cert-manager-cainjector/v1.21.2 (sidecar-injector e2e)"
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		LeaderElection:         false,
		// As cert-manager's cainjector: Secrets are read directly, only their metadata is cached.
		Client: client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
	})
	if err != nil {
		log.Error(err, "manager")
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := cainjector.RegisterAllInjectors(ctx, mgr, cainjector.SetupOptions{
		EnableCertificatesDataSource: true,
		EnabledReconcilersFor:        map[string]bool{"mutatingwebhookconfiguration": true},
	}); err != nil {
		log.Error(err, "register")
		os.Exit(1)
	}
	log.Info("starting")
	if err := mgr.Start(ctx); err != nil {
		log.Error(err, "start")
		os.Exit(1)
	}
}
