//! `infer`, `models`, `gen-input`: one model at one precision, and its inputs.

use super::*;

pub(super) fn infer(a: &InferArgs) -> Result<()> {
    let config: PrecisionConfig = a.precision.parse().context("--precision")?;
    let model = load_model(&a.model)?;
    refuse_overwriting_inputs(
        &model_and_input(&a.model, &a.input),
        &[Output::file("--output", &a.output)],
    )?;
    let seqs = npy::read_inputs(&a.input, &model)?;
    if a.what == What::Output && model.head.is_none() {
        bail!(
            "{}: --what output needs a model with a dense head",
            model.name
        );
    }
    let input_name = a.input.display().to_string();
    let runs = eval::evaluate(&model, &seqs, &input_name, &[config], false)?;
    let run = &runs[0];
    // Rows per sequence: every step, or one for a head on the last step or the final states
    // (`[N, O]` then, as onnxruntime gives it).
    let (data, width, rows) = match a.what {
        What::Hidden => (&run.hidden, model.hidden_output_size(), Some(seqs.steps)),
        What::Output => match (&run.output, &model.head) {
            (Some(o), Some(h)) if h.input == crate::lstm::HeadInput::EveryStep => {
                (o, h.output_size(), Some(h.rows(seqs.steps)))
            }
            (Some(o), Some(h)) => (o, h.output_size(), None),
            _ => bail!("{}: the model has no head", model.name),
        },
    };
    let shape: Vec<usize> = match (seqs.batched, rows) {
        (true, Some(t)) => vec![seqs.count, t, width],
        (false, Some(t)) => vec![t, width],
        (true, None) => vec![seqs.count, width],
        (false, None) => vec![width],
    };
    npy::write_f32(&a.output, &shape, data)?;
    if !a.quiet {
        crate::note!(
            "{}: {} sequence(s) x {} steps at {} -> {} {:?}",
            model.name,
            seqs.count,
            seqs.steps,
            config,
            a.output.display(),
            shape
        );
    }
    Ok(())
}

pub(super) fn models() -> Result<()> {
    crate::out!(
        "{:<16} {:>7} {:>12} {:>14}  description",
        "name",
        "layers",
        "parameters",
        "MACs/step"
    )?;
    for b in builtin::BUILTINS {
        let mut input = b.input;
        let (mut params, mut macs) = (0u64, 0u64);
        for &(h, dir) in b.layers {
            let per = (4 * h * (input + h) + 8 * h) as u64 * dir.count() as u64;
            params += per;
            macs += (4 * h * (input + h)) as u64 * dir.count() as u64;
            input = h * dir.count();
        }
        if let Some((o, _)) = b.head {
            params += (o * (input + 1)) as u64;
        }
        crate::out!(
            "{:<16} {:>7} {:>12} {:>14}  {}",
            format!("builtin:{}", b.name),
            b.layers.len(),
            params,
            macs,
            b.summary
        )?;
    }
    crate::out!("\nShapes follow the papers named in docs/MODELS.md; weights are seeded random, NOT trained.")?;
    Ok(())
}

pub(super) fn gen_input(a: &GenInputArgs) -> Result<()> {
    let model = load_model(&a.model)?;
    refuse_overwriting_inputs(
        &Input::model("--model", &a.model.model),
        &[Output::file("--output", &a.output)],
    )?;
    if a.sequences == 0 || a.steps == 0 {
        bail!("--sequences and --steps must be at least 1");
    }
    let width = model.input_size();
    // The values, and the file's bytes written from them.
    let need = crate::limits::product(&[8, a.sequences as u128, a.steps as u128, width as u128]);
    crate::limits::check_memory(
        &format!(
            "--sequences {} --steps {}: {width} features each",
            a.sequences, a.steps
        ),
        need,
    )?;
    let mut rng = builtin::SplitMix64::new(a.seed);
    let n = a.sequences * a.steps * width;
    if let Some(e) = &model.embedding {
        // Token ids, uniform over the vocabulary.
        let ids = crate::lstm::embedding::random_ids(&mut rng, e, a.sequences * a.steps);
        npy::write_i64(&a.output, &[a.sequences, a.steps], &ids)?;
        crate::note!(
            "{}: wrote {} sequence(s) x {} token ids (vocabulary {}) to {}",
            model.name,
            a.sequences,
            a.steps,
            e.vocab,
            a.output.display()
        );
        return Ok(());
    }
    let data: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
    npy::write_f32(
        &a.output,
        &[a.sequences, a.steps, model.input_size()],
        &data,
    )?;
    crate::note!(
        "{}: wrote {} sequence(s) x {} steps x {} features to {}",
        model.name,
        a.sequences,
        a.steps,
        model.input_size(),
        a.output.display()
    );
    Ok(())
}
