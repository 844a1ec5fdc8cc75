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
    let runs = eval::evaluate(&model, &seqs, &input_name, &[config], false)
        .map_err(naming_flag("--precision"))?;
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
    // The sizes asked for, or the ones the model fixes (a static export), or 4 x 32.
    let size = |flag: &str, given: Option<usize>, fixed: &Option<(usize, String)>, default| {
        match (given, fixed) {
            (Some(0), _) => bail!("{flag} 0: must be at least 1"),
            (Some(n), Some((want, by))) if n != *want => bail!(
                "{flag} {n}: '{}' fixes it to {want} (its {by} has that size written in; export the model with dynamic axes to run other sizes)",
                model.name
            ),
            (Some(n), _) => Ok(n),
            (None, Some((want, _))) => Ok(*want),
            (None, None) => Ok(default),
        }
    };
    let sequences = size("--sequences", a.sequences, &model.fixed.batch, 4)?;
    let steps = size("--steps", a.steps, &model.fixed.steps, 32)?;
    let width = model.input_size();
    // The values, and the file's bytes written from them: token ids (8 bytes each) for a
    // model with an embedding, else `width` features.
    let (per_position, what) = match &model.embedding {
        Some(_) => (16, "token ids".to_string()),
        None => (8 * width as u128, format!("{width} features each")),
    };
    let need = crate::limits::product(&[per_position, sequences as u128, steps as u128]);
    crate::limits::check_memory(
        &format!("--sequences {sequences} --steps {steps}: {what}"),
        need,
    )?;
    let mut rng = builtin::SplitMix64::new(a.seed);
    if let Some(e) = &model.embedding {
        // Token ids, uniform over the vocabulary.
        let ids = crate::lstm::embedding::random_ids(&mut rng, e, sequences * steps);
        npy::write_i64(&a.output, &[sequences, steps], &ids)?;
        crate::note!(
            "{}: wrote {sequences} sequence(s) x {steps} token ids (vocabulary {}) to {}",
            model.name,
            e.vocab,
            a.output.display()
        );
        return Ok(());
    }
    let data: Vec<f32> = (0..sequences * steps * width)
        .map(|_| rng.normal())
        .collect();
    npy::write_f32(&a.output, &[sequences, steps, width], &data)?;
    crate::note!(
        "{}: wrote {sequences} sequence(s) x {steps} steps x {width} features to {}",
        model.name,
        a.output.display()
    );
    Ok(())
}
