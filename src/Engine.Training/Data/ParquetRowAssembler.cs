using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using Engine.Core;
using Parquet;
using Parquet.Schema;

namespace Engine.Training.Data;

/// <summary>One leaf column of a Parquet schema: the fields from the top of the schema down to it, and its name for messages.</summary>
/// <param name="Leaf">The leaf (the column chunk that holds values).</param>
/// <param name="Chain">The fields from the top-level column down to <paramref name="Leaf"/>, inclusive.</param>
/// <param name="Name">The column as users know it: <c>messages[].content</c>, <c>chosen</c>.</param>
internal sealed record ParquetColumn(DataField Leaf, Field[] Chain, string Name);

/// <summary>
/// Turns the columns of one Parquet row group back into rows, one JSON object per row with the same shape a JSONL line
/// of the dataset has (a list of structs becomes a list of objects, a null stays null), by Dremel record assembly over
/// each leaf column's repetition and definition levels. Every fault names the column.
/// </summary>
internal static class ParquetRowAssembler
{
    // Bytes of the buffers one value of a column takes while its row group is decoded (value slot and the two levels).
    public const int BufferBytesPerValue = 24;

    // Text stays in the buffers Parquet.Net decoded it into and is written from there into each row's JSON, not copied
    // into a string first: a row group's text is held once fewer.
    private static readonly JsonTypeInfo<ReadOnlyMemory<char>> Chars =
        JsonMetadataServices.CreateValueInfo<ReadOnlyMemory<char>>(new JsonSerializerOptions { TypeInfoResolver = JsonTypeInfoResolver.Combine() }, new CharsConverter());

    private static readonly Dictionary<Type, ILeafReader> Readers = new()
    {
        [typeof(ReadOnlyMemory<char>)] = new LeafReader<ReadOnlyMemory<char>>(v => JsonValue.Create(v, Chars)),
        [typeof(ReadOnlyMemory<byte>)] = new LeafReader<ReadOnlyMemory<byte>>(v => JsonValue.Create(Convert.ToBase64String(v.Span))),
        [typeof(bool)] = new LeafReader<bool>(v => JsonValue.Create(v)),
        [typeof(sbyte)] = new LeafReader<sbyte>(v => JsonValue.Create(v)),
        [typeof(byte)] = new LeafReader<byte>(v => JsonValue.Create(v)),
        [typeof(short)] = new LeafReader<short>(v => JsonValue.Create(v)),
        [typeof(ushort)] = new LeafReader<ushort>(v => JsonValue.Create(v)),
        [typeof(int)] = new LeafReader<int>(v => JsonValue.Create(v)),
        [typeof(uint)] = new LeafReader<uint>(v => JsonValue.Create(v)),
        [typeof(long)] = new LeafReader<long>(v => JsonValue.Create(v)),
        [typeof(ulong)] = new LeafReader<ulong>(v => JsonValue.Create(v)),
        [typeof(decimal)] = new LeafReader<decimal>(v => JsonValue.Create(v)),

        // JSON has no NaN or infinity: they become null, as pandas' to_json writes them.
        [typeof(float)] = new LeafReader<float>(v => float.IsFinite(v) ? JsonValue.Create(v) : null),
        [typeof(double)] = new LeafReader<double>(v => double.IsFinite(v) ? JsonValue.Create(v) : null),
        [typeof(DateTime)] = new LeafReader<DateTime>(v => JsonValue.Create(v.ToString("o", CultureInfo.InvariantCulture))),
        [typeof(DateOnly)] = new LeafReader<DateOnly>(v => JsonValue.Create(v.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture))),
        [typeof(Guid)] = new LeafReader<Guid>(v => JsonValue.Create(v.ToString())),
    };

    private interface ILeafReader
    {
        void Assemble(ParquetRowGroupReader group, ParquetColumn column, JsonObject[] rows);
    }

    /// <summary>
    /// The leaf columns of <paramref name="schema"/>, checked to be ones this reader can assemble (no maps, no legacy
    /// two-level lists, value types JSON can hold, no deeper than <paramref name="maxDepth"/>).
    /// </summary>
    public static IReadOnlyList<ParquetColumn> Columns(ParquetSchema schema, string path, int maxDepth)
    {
        var result = new List<ParquetColumn>();
        foreach (var field in schema.Fields)
        {
            Walk(field, [], field.Name, 0, result, path, maxDepth);
        }

        return result;
    }

    /// <summary>Reads every column of row group <paramref name="index"/> and assembles its rows.</summary>
    /// <exception cref="InputException">A column cannot be read or its levels do not describe the rows; names the column and row group.</exception>
    public static JsonObject[] Read(ParquetReader reader, int index, IReadOnlyList<ParquetColumn> columns, string path)
    {
        var group = reader.OpenRowGroupReader(index);
        var rows = new JsonObject[checked((int)group.RowCount)];
        for (int i = 0; i < rows.Length; i++)
        {
            rows[i] = [];
        }

        foreach (var column in columns)
        {
            try
            {
                Readers[column.Leaf.ClrType].Assemble(group, column, rows);
            }
            catch (NotImplementedException e)
            {
                // Parquet.Net 6.1 reads v2 data pages only in columns that are not inside a list.
                throw new InputException(
                    path, null, column.Name,
                    $"row group {index}: the column is stored in a form the Parquet reader does not implement (v2 data pages inside a list); rewrite the file with v1 data pages (pyarrow's default)", e);
            }
            catch (Exception e) when (e is not InputException and not OutOfMemoryException)
            {
                throw new InputException(path, null, column.Name, $"row group {index}: {e.Message}", e);
            }
        }

        return rows;
    }

    private static void Walk(Field field, Field[] above, string name, int parentRepetition, List<ParquetColumn> result, string path, int maxDepth)
    {
        Field[] chain = [.. above, field];
        if (chain.Length > maxDepth / 2)
        {
            throw new InputException(path, null, name, $"nested {chain.Length} levels deep, over the limit of {maxDepth / 2}");
        }

        switch (field)
        {
            case DataField leaf when Readers.ContainsKey(leaf.ClrType):
                result.Add(new ParquetColumn(leaf, chain, name));
                break;
            case DataField leaf:
                throw new InputException(path, null, name, $"values of type {leaf.ClrType.Name} have no JSON form a dataset can use");
            case StructField group:
                foreach (var child in group.Fields)
                {
                    Walk(child, chain, $"{name}.{child.Name}", parentRepetition, result, path, maxDepth);
                }

                break;
            case ListField list when list.MaxRepetitionLevel > parentRepetition:
                // The item of a list is named by the list: messages[].role, not messages.list.element.role.
                Walk(list.Item, chain, $"{name}[]", list.MaxRepetitionLevel, result, path, maxDepth);
                break;
            case ListField:
                throw new InputException(path, null, name, "a list in the legacy two-level layout is not supported; write the file with a current Parquet writer");
            default:
                throw new InputException(path, null, name, $"{field.SchemaType.ToString().ToLowerInvariant()} columns are not supported (text, numbers, booleans, lists and structs are)");
        }
    }

    /// <summary>Reads one leaf column and places each of its values into the rows (Dremel record assembly).</summary>
    private sealed class LeafReader<T>(Func<T, JsonNode?> convert) : ILeafReader
        where T : struct
    {
        public void Assemble(ParquetRowGroupReader group, ParquetColumn column, JsonObject[] rows)
        {
            var leaf = column.Leaf;
            var metadata = group.GetMetadata(leaf)?.MetaData ?? throw new InvalidDataException("the column is missing from this row group");
            int count = checked((int)metadata.NumValues);
            var values = new T[count];
            int[]? definitions = leaf.MaxDefinitionLevel > 0 ? new int[count] : null;
            int[]? repetitions = leaf.MaxRepetitionLevel > 0 ? new int[count] : null;
            // Spelled out: a bare null would convert to an empty Memory (through int[]), which Parquet.Net takes as a buffer.
            Memory<int>? definitionMemory = definitions is null ? default(Memory<int>?) : definitions.AsMemory();
            Memory<int>? repetitionMemory = repetitions is null ? default(Memory<int>?) : repetitions.AsMemory();
            group.ReadRawAsync<T>(leaf, values, definitionMemory, repetitionMemory).AsTask().GetAwaiter().GetResult();

            // index[L]: the element of the list at repetition level L that the current value belongs to. A value repeated at
            // level r is the next element of the list at level r and the first of every list below it.
            var index = new int[leaf.MaxRepetitionLevel + 1];
            int row = -1, next = 0;
            for (int i = 0; i < count; i++)
            {
                int r = repetitions?[i] ?? 0, d = definitions?[i] ?? leaf.MaxDefinitionLevel;
                if (r == 0 && ++row >= rows.Length)
                {
                    throw new InvalidDataException($"the levels hold more than the row group's {rows.Length} rows");
                }

                if (row < 0 || r > leaf.MaxRepetitionLevel || d > leaf.MaxDefinitionLevel)
                {
                    throw new InvalidDataException($"value {i} has levels (repetition {r}, definition {d}) the schema does not allow");
                }

                Array.Clear(index, r + 1, index.Length - r - 1);
                if (r > 0)
                {
                    index[r]++;
                }

                Place(rows[row], column.Chain, d, index, () => convert(values[next++]));
            }

            if (row + 1 != rows.Length)
            {
                throw new InvalidDataException($"the levels hold {row + 1} rows, the row group {rows.Length}");
            }
        }

        // Walks down the fields to the slot of this value, creating objects and lists on the way (or finding those another
        // column of the same struct created), and stops where the definition level says a field is null or a list empty.
        private static void Place(JsonObject row, Field[] chain, int d, int[] index, Func<JsonNode?> value)
        {
            var slot = new Slot(row, chain[0].Name, -1);
            for (int k = 0; k < chain.Length; k++)
            {
                switch (chain[k])
                {
                    case StructField group when group.IsNullable && d < group.MaxDefinitionLevel:
                        slot.SetIfAbsent(null);
                        return;
                    case StructField:
                        slot = new Slot(slot.GetOrCreate(static () => new JsonObject()), chain[k + 1].Name, -1);
                        break;
                    case ListField list when d < list.MaxDefinitionLevel - 1:
                        slot.SetIfAbsent(null);
                        return;
                    case ListField list:
                        var items = slot.GetOrCreate(static () => new JsonArray());
                        if (d < list.MaxDefinitionLevel)
                        {
                            return;
                        }

                        slot = new Slot(items, null, index[list.MaxRepetitionLevel]);
                        break;
                    case DataField { IsArray: true } leaf:
                        var repeated = slot.GetOrCreate(static () => new JsonArray());
                        if (d >= leaf.MaxDefinitionLevel)
                        {
                            new Slot(repeated, null, index[leaf.MaxRepetitionLevel]).Set(value());
                        }

                        return;
                    default:
                        slot.Set(d < chain[k].MaxDefinitionLevel ? null : value());
                        return;
                }
            }
        }
    }

    /// <summary>Writes decoded text as a JSON string; rows are only ever written, never read back through it.</summary>
    private sealed class CharsConverter : JsonConverter<ReadOnlyMemory<char>>
    {
        public override ReadOnlyMemory<char> Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
            throw new NotSupportedException("Parquet rows are written as JSON, never read back through this converter");

        public override void Write(Utf8JsonWriter writer, ReadOnlyMemory<char> value, JsonSerializerOptions options) => writer.WriteStringValue(value.Span);
    }

    /// <summary>A place for a value: a property of an object, or an element of a list.</summary>
    private readonly record struct Slot(JsonNode Parent, string? Name, int Index)
    {
        public TNode GetOrCreate<TNode>(Func<TNode> create)
            where TNode : JsonNode
        {
            if (TryGet(out var existing))
            {
                return existing as TNode ?? throw new InvalidDataException("the columns of one struct disagree about its nulls");
            }

            var created = create();
            Set(created);
            return created;
        }

        public void SetIfAbsent(JsonNode? value)
        {
            if (!TryGet(out _))
            {
                Set(value);
            }
        }

        public void Set(JsonNode? value)
        {
            if (Parent is JsonObject obj)
            {
                obj[Name!] = value;
                return;
            }

            var list = (JsonArray)Parent;
            if (Index == list.Count)
            {
                list.Add(value);
            }
            else if (Index >= 0 && Index < list.Count)
            {
                list[Index] = value;
            }
            else
            {
                throw new InvalidDataException($"list element {Index} comes after only {list.Count}");
            }
        }

        private bool TryGet(out JsonNode? value)
        {
            if (Parent is JsonObject obj)
            {
                return obj.TryGetPropertyValue(Name!, out value);
            }

            var list = (JsonArray)Parent;
            bool present = Index >= 0 && Index < list.Count;
            value = present ? list[Index] : null;
            return present;
        }
    }
}
