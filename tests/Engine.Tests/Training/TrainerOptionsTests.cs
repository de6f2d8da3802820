using Engine.Training;
using Engine.Training.Options;
using Xunit;

namespace Engine.Tests.Training;

public class TrainerOptionsTests
{
    [Fact]
    public void Defaults_live_in_the_records()
    {
        Assert.Equal(2e-5, new SftOptions().LearningRate);
        Assert.Equal(6e-4, new PretrainOptions().LearningRate);
        Assert.Equal(LearningRateSchedule.Cosine, new PretrainOptions().Schedule);
        Assert.Equal(5e-5, new TrainerOptions().LearningRate);
        Assert.Equal(1f, new SftOptions().Optimizer.MaxGradNorm);
    }

    [Fact]
    public void Yaml_and_json_give_the_same_options()
    {
        const string yaml = """
            # SFT run
            learning_rate: 3.0e-4
            schedule: cosine
            warmup_steps: 10
            batch_size: 4
            packing: true
            nan_policy: skip
            optimizer:
              beta2: 0.99
              max_grad_norm: 0.5
            output_directory: "runs/sft"
            """;
        const string json = """
            {
              "learning_rate": 3e-4, "schedule": "cosine", "warmup_steps": 10, "batch_size": 4, "packing": true,
              "nan_policy": "skip", "optimizer": { "beta2": 0.99, "max_grad_norm": 0.5 }, "output_directory": "runs/sft"
            }
            """;
        var a = OptionsReader.Parse<SftOptions>(yaml, "sft.yaml", OptionsFormat.Yaml);
        var b = OptionsReader.Parse<SftOptions>(json, "sft.json", OptionsFormat.Json);
        Assert.Equal(a, b);
        Assert.Equal(3e-4, a.LearningRate);
        Assert.Equal(LearningRateSchedule.Cosine, a.Schedule);
        Assert.True(a.Packing);
        Assert.Equal(NanPolicy.Skip, a.NanPolicy);
        Assert.Equal(0.99f, a.Optimizer.Beta2);
        Assert.Equal(0.9f, a.Optimizer.Beta1);
        Assert.Equal(0.5f, a.Optimizer.MaxGradNorm);
        Assert.Equal("runs/sft", a.OutputDirectory);
        Assert.Equal(2e-5, new SftOptions().LearningRate);
    }

    [Fact]
    public void Unknown_yaml_key_names_file_line_and_key()
    {
        const string yaml = "learning_rate: 1e-4\nbatch_size: 2\nlearning_rat: 3\n";
        var e = Assert.Throws<OptionsException>(() => OptionsReader.Parse<SftOptions>(yaml, "sft.yaml", OptionsFormat.Yaml));
        Assert.Equal(3, e.Line);
        Assert.Equal("learning_rat", e.Key);
        Assert.StartsWith("sft.yaml:3: key 'learning_rat'", e.Message, StringComparison.Ordinal);
        Assert.Contains("did you mean 'learning_rate'", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Unknown_json_key_names_line_and_nested_key()
    {
        const string json = "{\n  \"seed\": 1,\n  \"optimizer\": {\n    \"beta1\": 0.8,\n    \"betta2\": 0.9\n  }\n}";
        var e = Assert.Throws<OptionsException>(() => OptionsReader.Parse<PretrainOptions>(json, "run.json", OptionsFormat.Json));
        Assert.Equal(5, e.Line);
        Assert.Equal("optimizer.betta2", e.Key);
        Assert.StartsWith("run.json:5:", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_key_of_another_trainer_is_unknown()
    {
        var e = Assert.Throws<OptionsException>(() => OptionsReader.Parse<PretrainOptions>("packing: true", "p.yaml", OptionsFormat.Yaml));
        Assert.Equal("packing", e.Key);
        Assert.Equal(1, e.Line);
    }

    [Fact]
    public void Wrong_types_and_duplicates_are_located()
    {
        var e = Assert.Throws<OptionsException>(() => OptionsReader.Parse<SftOptions>("seed: 1\nbatch_size: four\n", "s.yaml", OptionsFormat.Yaml));
        Assert.Equal(2, e.Line);
        Assert.Contains("expected a integer", e.Message.Replace("an integer", "a integer", StringComparison.Ordinal), StringComparison.Ordinal);
        e = Assert.Throws<OptionsException>(() => OptionsReader.Parse<SftOptions>("{\"seed\": 1,\n\"seed\": 2}", "s.json", OptionsFormat.Json));
        Assert.Equal(2, e.Line);
        Assert.Contains("twice", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<OptionsException>(() => OptionsReader.Parse<SftOptions>("schedule: cosh\n", "s.yaml", OptionsFormat.Yaml));
        Assert.Contains("constant, linear, cosine", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Overrides_apply_in_order_with_dotted_keys_and_aliases()
    {
        var o = OptionsReader.Apply(new SftOptions(), ["learning_rate=1e-3", "optimizer.beta2=0.9", "max_grad_norm=2", "per_device_train_batch_size=3", "lr_scheduler_type=constant", "learning_rate=2e-3"]);
        Assert.Equal(2e-3, o.LearningRate);
        Assert.Equal(0.9f, o.Optimizer.Beta2);
        Assert.Equal(2f, o.Optimizer.MaxGradNorm);
        Assert.Equal(3, o.BatchSize);
        Assert.Equal(LearningRateSchedule.Constant, o.Schedule);
        Assert.Equal(0.95f, new SftOptions().Optimizer.Beta2);
        var e = Assert.Throws<OptionsException>(() => OptionsReader.Apply(new SftOptions(), ["nope=1"]));
        Assert.Equal("override: key 'nope': unknown key; known keys: " + string.Join(", ", Known()), e.Message);

        static IEnumerable<string> Known() => typeof(SftOptions).GetProperties()
            .Where(p => p.CanWrite && p.Name != "EqualityContract")
            .OrderBy(p => p.DeclaringType == typeof(SftOptions) ? 1 : 0).ThenBy(p => p.MetadataToken)
            .Select(p => OptionsReader.SnakeCase(p.Name));
    }

    [Fact]
    public void Files_are_read_by_extension_and_round_trip_through_json()
    {
        string dir = Directory.CreateTempSubdirectory("engine-options-").FullName;
        try
        {
            var original = new SftOptions { LearningRate = 1e-3, Packing = true, Seed = 7, NanPolicy = NanPolicy.Skip, Optimizer = new() { Beta1 = 0.5f } };
            string json = Path.Combine(dir, "o.json");
            File.WriteAllText(json, OptionsReader.ToJson(original));
            Assert.Equal(original, OptionsReader.ReadFile<SftOptions>(json));
            string yaml = Path.Combine(dir, "o.yml");
            File.WriteAllText(yaml, "seed: 9\n");
            Assert.Equal(new SftOptions { Seed = 10 }, OptionsReader.ReadFile<SftOptions>(yaml, ["seed=10"]));
            Assert.Throws<OptionsException>(() => OptionsReader.ReadFile<SftOptions>(Path.Combine(dir, "o.toml")));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Validation_names_the_key()
    {
        var e = Assert.Throws<ArgumentException>(() => new SftOptions { GradientAccumulationSteps = 0 }.Validate());
        Assert.Contains("gradient_accumulation_steps", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<ArgumentException>(() => new SftOptions { Dropout = 1f }.Validate());
        Assert.Contains("dropout", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(LearningRateSchedule.Constant, 1, 0.25)]
    [InlineData(LearningRateSchedule.Constant, 4, 1.0)]
    [InlineData(LearningRateSchedule.Constant, 100, 1.0)]
    [InlineData(LearningRateSchedule.Linear, 2, 0.5)]
    [InlineData(LearningRateSchedule.Linear, 5, 1.0)]
    [InlineData(LearningRateSchedule.Linear, 53, 0.55)]
    [InlineData(LearningRateSchedule.Linear, 100, 1 - (0.9 * 95 / 96))]
    [InlineData(LearningRateSchedule.Cosine, 3, 0.75)]
    [InlineData(LearningRateSchedule.Cosine, 5, 1.0)]
    [InlineData(LearningRateSchedule.Cosine, 53, 0.55)]
    [InlineData(LearningRateSchedule.Cosine, 29, 0.1 + (0.9 * 0.5 * (1 + 0.70710678118654757)))]
    public void Schedules_take_known_values(LearningRateSchedule schedule, int step, double expected)
    {
        // Peak 1, 4 warmup steps, 100 steps, floor 10%: decay progress p = (s − 5)/96.
        Assert.Equal(expected, LearningRateScheduler.At(schedule, 1.0, 4, 0.1, step, 100), 12);
    }

    [Fact]
    public void Without_warmup_the_first_step_runs_at_the_peak()
    {
        Assert.Equal(3e-4, LearningRateScheduler.At(LearningRateSchedule.Cosine, 3e-4, 0, 0, 1, 1000), 15);
        Assert.Equal(2.0, LearningRateScheduler.At(LearningRateSchedule.Linear, 2.0, 0, 0, 1, 1), 15);
        Assert.Equal(1.0 - (0.9 * 999 / 1000), LearningRateScheduler.At(LearningRateSchedule.Linear, 1.0, 0, 0.1, 1000, 1000), 12);
    }
}
