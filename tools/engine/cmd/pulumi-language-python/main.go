// pulumi-language-python is our build of the Pulumi Python language host.
//
// Why ours: upstream's language host is a Go module of its own
// (github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3) that the Go module proxy
// reachable here refuses for every version (docs/engine.md). Everything the host decides is
// delegated to upstream code that the proxy does serve: virtual-environment and toolchain
// resolution come from github.com/pulumi/pulumi/sdk/v3/python/toolchain, and programs run under
// upstream's own `pulumi-language-python-exec` shim, copied by `make engine` from that same module.
// This file only speaks the LanguageRuntime gRPC protocol around them.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	pbempty "google.golang.org/protobuf/types/known/emptypb"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/cmdutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/version"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"github.com/pulumi/pulumi/sdk/v3/python/toolchain"
	"google.golang.org/grpc"

	"cipp-hardening/tools/engine/internal/parentdeath"
)

// The exec shim signals "an error was already shown to the user" with this exit code.
const userActionableExitCode = 32

// The CLI that started us, read before anything else runs (docs/engine.md, "When the CLI is killed").
var parentAtStart = os.Getppid()

func init() {
	// main stays on the process's main thread, which lives as long as the process: the parent-death
	// setting main asks for belongs to the thread that asks.
	runtime.LockOSThread()
}

func main() {
	if err := parentdeath.Arm(parentAtStart); err != nil {
		cmdutil.Exit(fmt.Errorf("language host: %w", err))
	}
	flag.String("tracing", "", "Zipkin-compatible tracing endpoint (accepted, unused)")
	flag.String("root", "", "project root (accepted, unused: the engine sends it in every request)")
	flag.Parse()
	engineAddress := ""
	if args := flag.Args(); len(args) > 0 {
		engineAddress = args[len(args)-1]
	}
	self, err := os.Executable()
	if err != nil {
		cmdutil.Exit(fmt.Errorf("locating the language host: %w", err))
	}
	host := &pythonHost{engineAddress: engineAddress, execShim: filepath.Join(filepath.Dir(self), "pulumi-language-python-exec")}
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, host)
			return nil
		},
	})
	if err != nil {
		cmdutil.Exit(fmt.Errorf("starting the language host: %w", err))
	}
	fmt.Printf("%d\n", handle.Port)
	if err := <-handle.Done; err != nil {
		cmdutil.Exit(fmt.Errorf("language host stopped: %w", err))
	}
}

type pythonHost struct {
	pulumirpc.UnimplementedLanguageRuntimeServer
	engineAddress string
	execShim      string
}

func (h *pythonHost) Handshake(
	_ context.Context, req *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	h.engineAddress = req.GetEngineAddress()
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (h *pythonHost) GetPluginInfo(context.Context, *pbempty.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version.Version}, nil
}

// options reads `runtime.options` (toolchain, virtualenv) the way upstream does: through the toolchain package.
func options(info *pulumirpc.ProgramInfo) (toolchain.PythonOptions, error) {
	opts := toolchain.PythonOptions{Root: info.GetRootDirectory(), ProgramDir: info.GetProgramDirectory()}
	raw := info.GetOptions().AsMap()
	if venv, ok := raw["virtualenv"].(string); ok {
		opts.Virtualenv = venv // relative to Root: the toolchain package resolves it
	}
	switch name, _ := raw["toolchain"].(string); name {
	case "", "pip":
		opts.Toolchain = toolchain.Pip
	case "uv":
		opts.Toolchain = toolchain.Uv
	case "poetry":
		opts.Toolchain = toolchain.Poetry
	default:
		return opts, fmt.Errorf("unsupported runtime option toolchain: %q (pip, uv or poetry)", name)
	}
	return opts, nil
}

func resolve(info *pulumirpc.ProgramInfo) (toolchain.Toolchain, error) {
	opts, err := options(info)
	if err != nil {
		return nil, err
	}
	return toolchain.ResolveToolchain(opts)
}

// pluginPackagesScript lists the installed distributions that carry a resource plugin's
// pulumi-plugin.json (what the engine needs before a program registers resources).
const pluginPackagesScript = `
import importlib.metadata as md, json
found = {}
for dist in md.distributions():
    for f in dist.files or []:
        if f.name == "pulumi-plugin.json":
            try:
                meta = json.loads(f.read_text())
            except Exception:
                continue
            if meta.get("resource") and meta.get("name"):
                found[meta["name"]] = {"name": meta["name"], "version": meta.get("version") or dist.version,
                                       "server": meta.get("server") or ""}
print(json.dumps(sorted(found.values(), key=lambda m: m["name"])))
`

type pluginPackage struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Server  string `json:"server"`
}

func (h *pythonHost) pluginPackages(ctx context.Context, info *pulumirpc.ProgramInfo) ([]pluginPackage, error) {
	tc, err := resolve(info)
	if err != nil {
		return nil, err
	}
	cmd, err := tc.Command(ctx, "-c", pluginPackagesScript)
	if err != nil {
		return nil, err
	}
	parentdeath.Bind(cmd)
	out, err := parentdeath.OutputBound(cmd)
	if err != nil {
		return nil, fmt.Errorf("listing the Python packages that carry Pulumi plugins: %w", err)
	}
	var packages []pluginPackage
	if err := json.Unmarshal(out, &packages); err != nil {
		return nil, fmt.Errorf("reading the plugin package list: %w", err)
	}
	return packages, nil
}

func (h *pythonHost) GetRequiredPackages(
	ctx context.Context, req *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	packages, err := h.pluginPackages(ctx, req.GetInfo())
	if err != nil {
		return nil, err
	}
	resp := &pulumirpc.GetRequiredPackagesResponse{}
	for _, p := range packages {
		resp.Packages = append(resp.Packages, &pulumirpc.PackageDependency{
			Kind: "resource", Name: p.Name, Version: normaliseVersion(p.Version), Server: p.Server,
		})
	}
	return resp, nil
}

func normaliseVersion(v string) string {
	if v == "" || strings.HasPrefix(v, "v") {
		return v
	}
	return "v" + v
}

func (h *pythonHost) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	tc, err := resolve(req.GetInfo())
	if err != nil {
		return nil, err
	}
	if err := tc.ValidateVenv(ctx); err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	cmd, err := tc.Command(ctx, append([]string{"-u", h.execShim}, h.runArguments(req)...)...)
	if err != nil {
		return nil, err
	}
	env, err := configEnvironment(req)
	if err != nil {
		return nil, err
	}
	cmd.Dir = req.GetPwd()
	cmd.Env = append(cmd.Environ(), env...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	parentdeath.Bind(cmd) // the program dies with us, and we die with the CLI
	if err := parentdeath.RunBound(cmd); err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			if exitErr.ExitCode() == userActionableExitCode {
				return &pulumirpc.RunResponse{Bail: true}, nil
			}
			return &pulumirpc.RunResponse{Error: fmt.Sprintf("Program exited with non-zero exit code: %d", exitErr.ExitCode())}, nil
		}
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("could not run the Python program: %v", err)}, nil
	}
	return &pulumirpc.RunResponse{}, nil
}

// configEnvironment passes the stack config as upstream's host does (pulumi/pulumi
// sdk/python/cmd/pulumi-language-python/main.go, constructConfig and constructConfigSecretKeys):
// no PULUMI_CONFIG at all when the stack has no config (the SDK reads "null" as a config and crashes),
// and "[]" rather than "null" when no key is secret.
func configEnvironment(req *pulumirpc.RunRequest) ([]string, error) {
	var env []string
	if config := req.GetConfig(); config != nil {
		encoded, err := json.Marshal(config)
		if err != nil {
			return nil, fmt.Errorf("serialising the stack config: %w", err)
		}
		env = append(env, "PULUMI_CONFIG="+string(encoded))
	}
	secretKeys := req.GetConfigSecretKeys()
	if secretKeys == nil {
		secretKeys = []string{}
	}
	encoded, err := json.Marshal(secretKeys)
	if err != nil {
		return nil, fmt.Errorf("serialising the secret config keys: %w", err)
	}
	return append(env, "PULUMI_CONFIG_SECRET_KEYS="+string(encoded)), nil
}

// runArguments are the exec shim's flags, in the names its argparse declares.
func (h *pythonHost) runArguments(req *pulumirpc.RunRequest) []string {
	var args []string
	add := func(flag, value string) {
		if value != "" {
			args = append(args, "--"+flag, value)
		}
	}
	add("monitor", req.GetMonitorAddress())
	add("engine", h.engineAddress)
	add("project", req.GetProject())
	add("root_directory", req.GetInfo().GetRootDirectory())
	add("stack", req.GetStack())
	add("pwd", req.GetPwd())
	add("dry_run", fmt.Sprintf("%v", req.GetDryRun()))
	add("parallel", fmt.Sprint(req.GetParallel()))
	add("organization", req.GetOrganization())
	program := req.GetInfo().GetProgramDirectory()
	if program == "" {
		program = "."
	}
	return append(append(args, program), req.GetArgs()...)
}

// RunPlugin runs a plugin written in Python (a policy pack) as `python <plugin dir> <args>`, in the
// virtual environment its PulumiPolicy.yaml / PulumiPlugin.yaml names.
func (h *pythonHost) RunPlugin(req *pulumirpc.RunPluginRequest, server pulumirpc.LanguageRuntime_RunPluginServer) error {
	tc, err := resolve(req.GetInfo())
	if err != nil {
		return err
	}
	args := append([]string{"-u", req.GetInfo().GetProgramDirectory()}, req.GetArgs()...)
	cmd, err := tc.Command(server.Context(), args...)
	if err != nil {
		return err
	}
	closer, stdout, stderr, err := rpcutil.MakeRunPluginStreams(server, false)
	if err != nil {
		return err
	}
	defer closer.Close()
	cmd.Dir = req.GetPwd()
	cmd.Env = append(cmd.Environ(), req.GetEnv()...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	parentdeath.Bind(cmd)
	code := int32(0)
	if err := parentdeath.RunBound(cmd); err != nil {
		var exitErr *exec.ExitError
		if !errors.As(err, &exitErr) {
			return fmt.Errorf("could not run the Python plugin in %s: %w", req.GetInfo().GetProgramDirectory(), err)
		}
		code = int32(exitErr.ExitCode())
	}
	if err := closer.Close(); err != nil {
		return err
	}
	return server.Send(&pulumirpc.RunPluginResponse{Output: &pulumirpc.RunPluginResponse_Exitcode{Exitcode: code}})
}

func (h *pythonHost) InstallDependencies(
	req *pulumirpc.InstallDependenciesRequest, server pulumirpc.LanguageRuntime_InstallDependenciesServer,
) error {
	closer, stdout, stderr, err := rpcutil.MakeInstallDependenciesStreams(server, req.GetIsTerminal())
	if err != nil {
		return err
	}
	defer closer.Close()
	tc, err := resolve(req.GetInfo())
	if err != nil {
		return err
	}
	return tc.InstallDependencies(server.Context(), req.GetInfo().GetRootDirectory(), req.GetUseLanguageVersionTools(),
		true, stdout, stderr)
}

func (h *pythonHost) About(ctx context.Context, req *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	tc, err := resolve(req.GetInfo())
	if err != nil {
		return nil, err
	}
	info, err := tc.About(ctx)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.AboutResponse{Executable: info.PythonExecutable, Version: info.PythonVersion.String()}, nil
}

func (h *pythonHost) GetProgramDependencies(
	ctx context.Context, req *pulumirpc.GetProgramDependenciesRequest,
) (*pulumirpc.GetProgramDependenciesResponse, error) {
	tc, err := resolve(req.GetInfo())
	if err != nil {
		return nil, err
	}
	packages, err := tc.ListPackages(ctx, req.GetTransitiveDependencies())
	if err != nil {
		return nil, err
	}
	resp := &pulumirpc.GetProgramDependenciesResponse{}
	for _, p := range packages {
		resp.Dependencies = append(resp.Dependencies, &pulumirpc.DependencyInfo{Name: p.Name, Version: p.Version})
	}
	return resp, nil
}
