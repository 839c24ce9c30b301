//! One case per row of docs/bad-input.md: bad input exits with status 1 and an error that names
//! the file, the line and the field, never a panic, and writes nothing.

use std::process::Command;

struct Case {
    /// The row of docs/bad-input.md.
    name: &'static str,
    /// `trace`, `profile` or `scenario`: which flag takes the file.
    kind: &'static str,
    content: &'static str,
    /// Substrings the error must contain (after `<file>` is replaced by the file's path).
    expect: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        name: "trace: missing column",
        kind: "trace",
        content: "id,arrival_s,width,steps\n0,0,256,28\n",
        expect: &["<file>:1", "lacks required column(s) height"],
    },
    Case {
        name: "trace: unknown column",
        kind: "trace",
        content: "id,arrival_s,width,height,steps,foo\n0,0,256,256,28,1\n",
        expect: &["<file>:1", "unknown column(s) `foo`"],
    },
    Case {
        name: "trace: wrong number of fields",
        kind: "trace",
        content: "id,arrival_s,width,height,steps,slo_s\n0,0,256,256\n",
        expect: &["<file>:2", "expected 6 fields"],
    },
    Case {
        name: "trace: not a number",
        kind: "trace",
        content: "id,arrival_s,width,height,steps,slo_s\n0,soon,256,256,28,1.5\n",
        expect: &["<file>:2", "`arrival_s`", "got `soon`"],
    },
    Case {
        name: "trace: NaN or infinity",
        kind: "trace",
        content: "id,arrival_s,width,height,steps,slo_s\n0,inf,256,256,28,1.5\n",
        expect: &["<file>:2", "`arrival_s`", "finite"],
    },
    Case {
        name: "trace: negative arrival",
        kind: "trace",
        content: "id,arrival_s,width,height,steps,slo_s\n0,-1,256,256,28,1.5\n",
        expect: &["<file>:2", ">= 0"],
    },
    Case {
        name: "trace: unsorted arrivals",
        kind: "trace",
        content: "id,arrival_s,width,height,steps,slo_s\n0,5,256,256,28,1.5\n1,1,256,256,28,1.5\n",
        expect: &["<file>:3", "non-decreasing"],
    },
    Case {
        name: "trace: zero resolution",
        kind: "trace",
        content: "id,arrival_s,width,height,steps,slo_s\n0,0,0,256,28,1.5\n",
        expect: &["<file>:2", "zero side"],
    },
    Case {
        name: "trace: huge resolution",
        kind: "trace",
        content: "id,arrival_s,width,height,steps,slo_s\n0,0,32768,32768,28,1.5\n",
        expect: &["<file>:2", "largest supported side"],
    },
    Case {
        name: "trace: resolution not a multiple of 16",
        kind: "trace",
        content: "id,arrival_s,width,height,steps,slo_s\n0,0,250,256,28,1.5\n",
        expect: &["<file>:2", "multiple of 16"],
    },
    Case {
        name: "trace: zero steps",
        kind: "trace",
        content: "id,arrival_s,width,height,steps,slo_s\n0,0,256,256,0,1.5\n",
        expect: &["<file>:2", "`steps`", "at least 1"],
    },
    Case {
        name: "trace: deadline before arrival",
        kind: "trace",
        content: "id,arrival_s,width,height,steps,slo_s\n0,0,256,256,28,-1\n",
        expect: &["<file>:2", "`slo_s`", ">= 0"],
    },
    Case {
        name: "trace: duplicate id",
        kind: "trace",
        content: "id,arrival_s,width,height,steps,slo_s\n7,0,256,256,28,1.5\n7,1,256,256,28,1.5\n",
        expect: &["<file>:3", "id 7 is already used on line 2"],
    },
    Case {
        name: "trace: empty file",
        kind: "trace",
        content: "",
        expect: &["<file>", "no requests"],
    },
    Case {
        name: "trace: no SLO for a resolution",
        kind: "trace",
        content: "id,arrival_s,width,height,steps\n0,0,768,768,28\n",
        expect: &["<file>:2", "`slo_s`", "768x768"],
    },
    Case {
        name: "trace: resolution the profile cannot cover",
        kind: "trace",
        content: "id,arrival_s,width,height,steps,slo_s\n0,0,4096,4096,28,30\n",
        expect: &["<file>", "request id 0", "4096x4096"],
    },
    Case {
        name: "profile: missing degree the run needs",
        kind: "profile",
        content: "model,gpu,width,height,sp_degree,batch,step_ms\nflux1-dev,h100,256,256,1,1,30\n",
        expect: &["<file>", "no rows for SP degree 2"],
    },
    Case {
        name: "profile: non-positive time",
        kind: "profile",
        content: "model,gpu,width,height,sp_degree,batch,step_ms\nflux1-dev,h100,256,256,1,1,0\n",
        expect: &["<file>:2", "`step_ms`", "positive"],
    },
    Case {
        name: "profile: time falls as images grow",
        kind: "profile",
        content: "model,gpu,width,height,sp_degree,batch,step_ms\nflux1-dev,h100,256,256,1,1,40\nflux1-dev,h100,512,512,1,1,20\n",
        expect: &["<file>:3", "`step_ms`", "cannot be faster"],
    },
    Case {
        name: "profile: duplicate row",
        kind: "profile",
        content: "model,gpu,width,height,sp_degree,batch,step_ms\nflux1-dev,h100,256,256,1,1,30\nflux1-dev,h100,256,256,1,1,31\n",
        expect: &["<file>:3", "duplicate row", "line 2"],
    },
    Case {
        name: "profile: a quoted cell no quote closes",
        kind: "profile",
        content: "model,gpu,width,height,sp_degree,batch,step_ms,source\nflux1-dev,h100,256,256,1,1,30,\"oops\nflux1-dev,h100,512,512,1,1,60,x\n",
        expect: &["<file>:2", "no quote closes it"],
    },
    Case {
        name: "profile: degree not a power of two",
        kind: "profile",
        content: "model,gpu,width,height,sp_degree,batch,step_ms\nflux1-dev,h100,256,256,3,1,30\n",
        expect: &["<file>:2", "`sp_degree`", "power of two"],
    },
    Case {
        name: "scenario: unknown key",
        kind: "scenario",
        content: "[wrkload]\nrequests = 3\n",
        expect: &["<file>:1", "did you mean `workload`?"],
    },
    Case {
        name: "scenario: wrong type",
        kind: "scenario",
        content: "[workload]\nrequests = \"many\"\n",
        expect: &["<file>:2", "expected usize"],
    },
    Case {
        name: "scenario: SP 8 on a 4-GPU node",
        kind: "scenario",
        content: "[cluster]\ngpus_per_node = 4\n[policy]\nrun = [\"xdit-sp8\"]\n",
        expect: &["xdit-sp8 needs 8 GPUs in one node, but nodes have 4"],
    },
    Case {
        name: "scenario: zero GPUs",
        kind: "scenario",
        content: "[cluster]\nnodes = 0\n",
        expect: &["<file>", "at least one GPU"],
    },
    Case {
        name: "scenario: rate <= 0",
        kind: "scenario",
        content: "[workload]\nrate_per_min = -2\n",
        expect: &["<file>", "`workload.rate_per_min`", "positive"],
    },
    Case {
        name: "scenario: zero-length round",
        kind: "scenario",
        content: "[policy.tetriserve]\ntau_ms = 0\n",
        expect: &["<file>", "`policy.tetriserve.tau_ms`"],
    },
    Case {
        name: "scenario: round shorter than a millisecond",
        kind: "scenario",
        content: "[policy.tetriserve]\ntau_ms = 0.5\n",
        expect: &["<file>", "`policy.tetriserve.tau_ms`", "1 to 3600000 ms"],
    },
    Case {
        name: "scenario: round longer than an hour",
        kind: "scenario",
        content: "[policy.tetriserve]\ntau_ms = 1e300\n",
        expect: &["<file>", "`policy.tetriserve.tau_ms`", "1 to 3600000 ms"],
    },
    Case {
        name: "scenario: unknown stepwise hopeless rule",
        kind: "scenario",
        content: "[policy.stepwise]\nhopeless = \"drop\"\n",
        expect: &["<file>", "`policy.stepwise.hopeless`", "give-up"],
    },
    Case {
        name: "scenario: unknown shedding rule",
        kind: "scenario",
        content: "[policy.tetriserve]\nshed_rule = \"biggest\"\n",
        expect: &["<file>", "`policy.tetriserve.shed_rule`", "largest-work"],
    },
    Case {
        name: "scenario: shedding capacity <= 0",
        kind: "scenario",
        content: "[policy.tetriserve]\nshed_capacity = 0\n",
        expect: &["<file>", "`policy.tetriserve.shed_capacity`", "positive"],
    },
    Case {
        name: "scenario: TOML syntax",
        kind: "scenario",
        content: "seed = \n",
        expect: &["<file>:1"],
    },
    Case {
        name: "trace: arrival beyond the horizon",
        kind: "trace",
        content: "id,arrival_s,width,height,steps,slo_s\n0,18446744073.7,256,256,28,\n",
        expect: &["<file>:2", "`arrival_s`", "horizon"],
    },
    Case {
        name: "trace: arrival + SLO beyond the horizon",
        kind: "trace",
        content: "id,arrival_s,width,height,steps,slo_s\n0,4611686000,256,256,28,100\n",
        expect: &["<file>:2", "`slo_s`", "horizon"],
    },
    Case {
        name: "scenario: Gamma arrivals with cv 0 name the cv",
        kind: "scenario",
        content: "[workload]\narrival = \"gamma\"\ncv = 0.0\n",
        expect: &["field `workload.cv`", "coefficient of variation"],
    },
    Case {
        name: "scenario: a key of another arrival process (cv with poisson arrivals)",
        kind: "scenario",
        content: "[workload]\narrival = \"poisson\"\ncv = 2.0\n",
        expect: &["<file>", "field `workload.cv`", "shapes gamma arrivals"],
    },
    Case {
        name: "scenario: on-off keys with constant arrivals",
        kind: "scenario",
        content: "[workload]\narrival = \"constant\"\non_s = 5.0\noff_s = 5.0\n",
        expect: &["<file>", "field `workload.on_s`", "shapes on-off arrivals"],
    },
    Case {
        name: "scenario: one resolution's SLO base given twice",
        kind: "scenario",
        content: "[slo]\nbases_s = { \"256x256\" = 1.5, \"256\" = 3.0 }\n",
        expect: &["field `slo.bases_s`", "already sets"],
    },
    Case {
        name: "scenario: two cost models",
        kind: "scenario",
        content: "[cost]\nprofile = \"h100-flux1-dev\"\nanalytic = { model = \"flux1-dev\", gpu = \"h100\" }\n",
        expect: &["field `cost`", "both `profile` and `analytic`"],
    },
    Case {
        name: "trace: too many steps",
        kind: "trace",
        content: "id,arrival_s,width,height,steps,slo_s\n0,0,256,256,1000000000,\n",
        expect: &["<file>:2", "`steps`", "more than the 10000"],
    },
    Case {
        name: "scenario: too many steps",
        kind: "scenario",
        content: "[workload]\nsteps = 20000\n",
        expect: &["20000 steps is more than the 10000"],
    },
    Case {
        name: "scenario: a round of too many steps",
        kind: "scenario",
        content: "[policy.tetriserve]\ngranularity_steps = 4294967295\n",
        expect: &["policy.tetriserve.granularity_steps", "more than the 1000"],
    },
    Case {
        name: "scenario: arrivals beyond the horizon",
        kind: "scenario",
        content: "[workload]\nrate_per_min = 1e-10\n",
        expect: &["horizon", "workload.rate_per_min"],
    },
];

#[test]
fn every_bad_input_is_a_clean_error() {
    let dir = tempfile::tempdir().unwrap();
    for (i, c) in CASES.iter().enumerate() {
        let ext = if c.kind == "scenario" { "toml" } else { "csv" };
        let file = dir.path().join(format!("case{i}.{ext}"));
        std::fs::write(&file, c.content).unwrap();
        let out = dir.path().join(format!("out{i}"));
        let flag = match c.kind {
            "trace" => "--trace",
            "profile" => "--profile",
            _ => "--scenario",
        };
        // A trace fixes its requests, so `--requests` (refused beside it) shortens only
        // generated workloads.
        let requests: &[&str] = if flag == "--trace" {
            &[]
        } else {
            &["--requests", "20"]
        };
        let o = Command::new(env!("CARGO_BIN_EXE_tetriserve"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["simulate", flag, file.to_str().unwrap()])
            .args(requests)
            .args(["--out", out.to_str().unwrap()])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(
            o.status.code(),
            Some(1),
            "{}: status {:?}\n{err}",
            c.name,
            o.status
        );
        assert!(!err.contains("panicked"), "{}: {err}", c.name);
        for e in c.expect {
            let e = e.replace("<file>", file.to_str().unwrap());
            assert!(err.contains(&e), "{}: expected `{e}` in:\n{err}", c.name);
        }
        assert!(!out.exists(), "{}: an output directory was written", c.name);
    }
}

#[test]
fn utf8_bom_and_crlf_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bom.csv");
    std::fs::write(&file, "\u{feff}id,arrival_s,width,height,steps,slo_s\r\n0,0,256,256,28,1.5\r\n1,0.5,512,512,28,2\r\n").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_tetriserve"))
        .args([
            "simulate",
            "--trace",
            file.to_str().unwrap(),
            "-p",
            "rssp",
            "--format",
            "csv",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("rssp,2,2,")
    );
}
