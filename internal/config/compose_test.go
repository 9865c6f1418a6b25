package config_test

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/kasync/kasync/internal/config"
)

// composeFile is the part of compose.yaml the checks below read.
type composeFile struct {
	Services map[string]struct {
		Image       string            `yaml:"image"`
		Build       any               `yaml:"build"`
		Command     []string          `yaml:"command"`
		Environment map[string]string `yaml:"environment"`
		Volumes     []string          `yaml:"volumes"`
		Ports       []string          `yaml:"ports"`
		DependsOn   any               `yaml:"depends_on"`
	} `yaml:"services"`
	Volumes map[string]any `yaml:"volumes"`
}

// flagValue returns the value after flag in args (as "--flag value" or "--flag=value").
func flagValue(args []string, flag string) (string, bool) {
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return args[i+1], true
		}
		if v, ok := strings.CutPrefix(a, flag+"="); ok {
			return v, true
		}
	}
	return "", false
}

// compose.yaml, its Dockerfile and the example config it mounts agree: this machine has
// no Docker engine to run them, so what `docker compose up` depends on is checked here.
// The example config passes `kasync config check` with the service's environment; the
// worker serves exactly the config's worker-served functions, at the node's gRPC port;
// Redpanda is reachable from the host where the README's KASYNC_TEST_BROKERS says;
// every image is pinned; every named volume is declared.
func TestComposeFileAgreesWithItsConfig(t *testing.T) {
	root := filepath.Join("..", "..")
	data, err := os.ReadFile(filepath.Join(root, "compose.yaml"))
	require.NoError(t, err)
	var c composeFile
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	require.NoError(t, dec.Decode(&c))
	require.ElementsMatch(t, []string{"redpanda", "kasync", "worker"}, slices.Collect(mapKeys(c.Services)))

	for name, s := range c.Services {
		require.NotEmpty(t, s.Image, "service %s has an image", name)
		_, tag, ok := strings.Cut(s.Image[strings.LastIndex(s.Image, "/")+1:], ":")
		require.True(t, ok && tag != "" && tag != "latest", "service %s pins its image (%s)", name, s.Image)
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if strings.HasPrefix(src, ".") {
				_, err := os.Stat(filepath.Join(root, src))
				require.NoError(t, err, "service %s mounts %s", name, src)
			} else {
				require.Contains(t, c.Volumes, src, "service %s: named volume %s is declared", name, src)
			}
		}
	}

	// The node: its config, as the container sees it.
	node := c.Services["kasync"]
	require.NotNil(t, node.Build, "the kasync service builds the repository's Dockerfile")
	cfgPath, ok := flagValue(node.Command, "--config")
	require.True(t, ok, "kasync runs with --config")
	var hostPath string
	for _, v := range node.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && parts[1] == cfgPath {
			hostPath = filepath.Join(root, parts[0])
		}
	}
	require.NotEmpty(t, hostPath, "the config %s is mounted into the kasync service", cfgPath)
	for k, v := range node.Environment {
		t.Setenv(k, v)
	}
	cfg, err := config.Load(hostPath)
	require.NoError(t, err, "the example config passes kasync config check")
	require.Equal(t, []string{"redpanda:9092"}, cfg.Kafka.Brokers)
	_, grpcPort, err := net.SplitHostPort(cfg.Node.GRPCListen)
	require.NoError(t, err)
	_, httpPort, err := net.SplitHostPort(cfg.Node.HTTPListen)
	require.NoError(t, err)
	require.Contains(t, node.Ports, grpcPort+":"+grpcPort)
	require.Contains(t, node.Ports, httpPort+":"+httpPort)
	dockerfile, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	require.NoError(t, err)
	require.Contains(t, string(dockerfile), "EXPOSE "+grpcPort+" "+httpPort)
	require.Contains(t, string(dockerfile), "/var/lib/kasync", "the image owns the data directory")
	require.Equal(t, "/var/lib/kasync", cfg.Node.DataDir)

	// The worker: the functions the node leaves to SDK workers, at the node's port.
	worker := c.Services["worker"]
	require.Equal(t, node.Image, worker.Image, "the worker runs the image the node builds")
	sched, ok := flagValue(worker.Command, "--scheduler")
	require.True(t, ok)
	require.Equal(t, "kasync:"+grpcPort, sched)
	fns, ok := flagValue(worker.Command, "--functions")
	require.True(t, ok)
	var served []string
	for _, f := range cfg.Functions {
		if f.URL == "" {
			served = append(served, f.Name)
		}
	}
	require.ElementsMatch(t, served, strings.Split(fns, ","))

	// Redpanda: the host reaches it where the README points KASYNC_TEST_BROKERS.
	rp := c.Services["redpanda"]
	require.Contains(t, rp.Ports, "19092:19092")
	advertise, ok := flagValue(rp.Command, "--advertise-kafka-addr")
	require.True(t, ok)
	require.Contains(t, advertise, "external://localhost:19092")
	require.Contains(t, advertise, "internal://redpanda:9092")
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	require.NoError(t, err)
	require.Contains(t, string(readme), "KASYNC_TEST_BROKERS=localhost:19092")
	require.Contains(t, string(readme), "docker compose up")
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
