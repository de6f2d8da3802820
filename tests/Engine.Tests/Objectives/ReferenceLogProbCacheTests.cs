using Engine.Core;
using Engine.Core.Cpu;
using Engine.Models;
using Engine.Models.Formats;
using Engine.Models.HuggingFace;
using Engine.Training.Objectives;
using Xunit;

namespace Engine.Tests.Objectives;

/// <summary>Reference log-probs computed once, cached on disk, found again, and recomputed when the data or the model changes.</summary>
[Trait("Category", "Training")]
public sealed class ReferenceLogProbCacheTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("engine-refcache-").FullName;
    private readonly CpuBackend backend = new(2);

    public void Dispose()
    {
        backend.Dispose();
        Directory.Delete(dir, recursive: true);
    }

    private Transformer Reference(ulong seed)
    {
        var model = new Transformer(SyntheticPreferences.Gpt2Config, backend, trainable: false);
        model.InitializeWeights(seed);
        return model;
    }

    [Fact]
    public void The_cache_round_trips_and_a_hit_never_opens_the_reference()
    {
        var batches = SyntheticPreferences.Batches(SyntheticPreferences.Examples(1, 12, rankingEvery: 3), 5);
        string path = Path.Combine(dir, "ref.safetensors");
        using var reference = Reference(3);
        string key = ReferenceLogProbCache.ModelKey(reference);
        int opened = 0;
        var computed = ReferenceLogProbCache.LoadOrCompute(path, batches, key, () =>
        {
            opened++;
            return Reference(3);
        });
        Assert.Equal(1, opened);
        Assert.True(File.Exists(path));

        var cached = ReferenceLogProbCache.LoadOrCompute(path, batches, key, () => throw new InvalidOperationException("the cache should have hit"));
        Assert.Equal(computed.DatasetKey, cached.DatasetKey);
        Assert.Equal(computed.Count, cached.Count);
        using var live = new ReferenceModel(reference);
        foreach (var batch in batches)
        {
            var expected = new float[batch.Rows];
            var fromDisk = new float[batch.Rows];
            live.SequenceLogProbs(batch, expected);
            cached.SequenceLogProbs(batch, fromDisk);
            Assert.Equal(expected, fromDisk);
            Assert.All(fromDisk, x => Assert.True(x < 0));
        }
    }

    [Fact]
    public void Different_data_or_a_different_reference_is_a_miss()
    {
        var batches = SyntheticPreferences.Batches(SyntheticPreferences.Examples(1, 6), 3);
        var other = SyntheticPreferences.Batches(SyntheticPreferences.Examples(2, 6), 3);
        Assert.NotEqual(ReferenceLogProbCache.DatasetKeyOf(batches), ReferenceLogProbCache.DatasetKeyOf(other));
        Assert.Equal(ReferenceLogProbCache.DatasetKeyOf(batches), ReferenceLogProbCache.DatasetKeyOf(SyntheticPreferences.Batches(SyntheticPreferences.Examples(1, 6), 3)));

        string path = Path.Combine(dir, "ref.safetensors");
        using var a = Reference(3);
        using var b = Reference(4);
        string keyA = ReferenceLogProbCache.ModelKey(a), keyB = ReferenceLogProbCache.ModelKey(b);
        Assert.NotEqual(keyA, keyB);
        ReferenceLogProbCache.Compute(a, batches).Save(path);

        Assert.NotNull(ReferenceLogProbCache.TryLoad(path, ReferenceLogProbCache.DatasetKeyOf(batches), keyA));
        Assert.Null(ReferenceLogProbCache.TryLoad(path, ReferenceLogProbCache.DatasetKeyOf(other), keyA));
        Assert.Null(ReferenceLogProbCache.TryLoad(path, ReferenceLogProbCache.DatasetKeyOf(batches), keyB));

        int opened = 0;
        var recomputed = ReferenceLogProbCache.LoadOrCompute(path, other, keyA, () =>
        {
            opened++;
            return Reference(3);
        });
        Assert.Equal(1, opened);
        Assert.Equal(ReferenceLogProbCache.DatasetKeyOf(other), recomputed.DatasetKey);
        Assert.NotNull(ReferenceLogProbCache.TryLoad(path, recomputed.DatasetKey, keyA));

        // A row the cache was not computed on is named, not silently scored.
        var e = Assert.Throws<KeyNotFoundException>(() => recomputed.SequenceLogProbs(batches[0], new float[batches[0].Rows]));
        Assert.Contains("not in the reference log-prob cache", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_row_has_the_same_key_whatever_it_is_batched_and_padded_with()
    {
        var examples = SyntheticPreferences.Examples(5, 4);
        var alone = SyntheticPreferences.Batches(examples.Take(1), 1).Single();
        var together = SyntheticPreferences.Batches(examples, 4).Single();
        Assert.True(together.Time >= alone.Time);
        Assert.Equal(ReferenceLogProbCache.RowKey(alone, 0), ReferenceLogProbCache.RowKey(together, 0));
        Assert.Equal(ReferenceLogProbCache.RowKey(alone, 1), ReferenceLogProbCache.RowKey(together, 1));
        Assert.NotEqual(ReferenceLogProbCache.RowKey(together, 0), ReferenceLogProbCache.RowKey(together, 1));

        using var reference = Reference(6);
        var cache = ReferenceLogProbCache.Compute(reference, [together]);
        var values = new float[2];
        cache.SequenceLogProbs(alone, values);
        using var live = new ReferenceModel(reference);
        var direct = new float[2];
        live.SequenceLogProbs(alone, direct);
        Assert.Equal(direct[0], values[0], 1e-4f);
        Assert.Equal(direct[1], values[1], 1e-4f);
    }

    [Fact]
    public void A_checkpoint_key_identifies_the_weights_without_loading_them()
    {
        using var a = Reference(3);
        string path = Path.Combine(dir, "ckpt");
        HfCheckpoint.Save(a, path);
        string first = ReferenceLogProbCache.CheckpointKey(path);
        Assert.Equal(first, ReferenceLogProbCache.CheckpointKey(path));
        using var b = Reference(4);
        HfCheckpoint.Save(b, path);
        Assert.NotEqual(first, ReferenceLogProbCache.CheckpointKey(path));
        Assert.ThrowsAny<InputException>(() => ReferenceLogProbCache.CheckpointKey(dir));
    }

    [Fact]
    public void A_file_that_is_not_a_cache_is_refused_rather_than_overwritten()
    {
        string path = Path.Combine(dir, "weights.safetensors");
        var writer = new SafetensorsWriter();
        writer.AddF32("x", [1f], 1);
        writer.Save(path);
        var e = Assert.ThrowsAny<InputException>(() => ReferenceLogProbCache.TryLoad(path, "a", "b"));
        Assert.Contains("not a reference log-prob cache", e.Message, StringComparison.Ordinal);
    }
}
