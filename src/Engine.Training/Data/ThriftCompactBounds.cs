namespace Engine.Training.Data;

/// <summary>
/// Walks a Thrift compact-protocol struct (a Parquet footer) without building it, and fails when a list, set, map or
/// binary claims more elements or bytes than the rest of the buffer can hold. Parquet.Net sizes its lists from those
/// counts before reading the elements, so a footer that passes this check allocates at most in proportion to its own
/// length (every element takes at least one byte).
/// </summary>
internal static class ThriftCompactBounds
{
    private const int MaxDepth = 64;

    /// <summary>Checks <paramref name="bytes"/> holds one well-formed struct whose every count fits; returns null, or what is wrong.</summary>
    public static string? Check(ReadOnlySpan<byte> bytes)
    {
        int position = 0;
        try
        {
            SkipStruct(bytes, ref position, 0);
            return null;
        }
        catch (InvalidDataException e)
        {
            return $"{e.Message} (at byte {position} of {bytes.Length})";
        }
    }

    /// <summary>Whether a list of <paramref name="count"/> elements fits the bytes left.</summary>
    private static void CheckCount(ReadOnlySpan<byte> bytes, int position, ulong count)
    {
        if (count > (ulong)(bytes.Length - position))
        {
            throw new InvalidDataException($"a list of {count:N0} elements in the {bytes.Length - position:N0} bytes left");
        }
    }

    /// <summary>
    /// Reads the page sizes of a Parquet page header (fields 2 and 3 of <c>PageHeader</c>) at the start of
    /// <paramref name="bytes"/>, checking the rest of the header as <see cref="Check"/> does. Returns null, or what is
    /// wrong (which may only mean that the header goes on past the bytes given).
    /// </summary>
    public static string? ReadPageHeader(ReadOnlySpan<byte> bytes, out int headerLength, out long uncompressed, out long compressed)
    {
        int position = 0;
        uncompressed = compressed = -1;
        try
        {
            short field = 0;
            while (true)
            {
                byte header = Byte(bytes, ref position);
                int type = header & 0x0F;
                if (type == 0)
                {
                    headerLength = position;
                    return uncompressed < 0 || compressed < 0 ? "a page header without its sizes" : null;
                }

                field = header >> 4 == 0 ? (short)ZigZag(Varint(bytes, ref position)) : (short)(field + (header >> 4));
                if (type == 5 && field == 2)
                {
                    uncompressed = ZigZag(Varint(bytes, ref position));
                }
                else if (type == 5 && field == 3)
                {
                    compressed = ZigZag(Varint(bytes, ref position));
                }
                else if (type is not (1 or 2))
                {
                    SkipValue(bytes, ref position, type, 0);
                }
            }
        }
        catch (InvalidDataException e)
        {
            headerLength = 0;
            return e.Message;
        }
    }

    private static long ZigZag(ulong value) => (long)(value >> 1) ^ -(long)(value & 1);

    private static void SkipStruct(ReadOnlySpan<byte> bytes, ref int position, int depth)
    {
        if (depth > MaxDepth)
        {
            throw new InvalidDataException($"structs nested deeper than {MaxDepth}");
        }

        while (true)
        {
            byte header = Byte(bytes, ref position);
            int type = header & 0x0F;
            if (type == 0)
            {
                return;
            }

            if (header >> 4 == 0)
            {
                Varint(bytes, ref position);
            }

            // Booleans are carried in the field header itself.
            if (type is not (1 or 2))
            {
                SkipValue(bytes, ref position, type, depth);
            }
        }
    }

    private static void SkipValue(ReadOnlySpan<byte> bytes, ref int position, int type, int depth)
    {
        switch (type)
        {
            case 1 or 2 or 3:
                Byte(bytes, ref position);
                break;
            case 4 or 5 or 6:
                Varint(bytes, ref position);
                break;
            case 7:
                Skip(bytes, ref position, 8, "a double");
                break;
            case 8:
                Skip(bytes, ref position, Varint(bytes, ref position), "a binary");
                break;
            case 9 or 10:
                byte header = Byte(bytes, ref position);
                ulong count = (ulong)(header >> 4) == 15 ? Varint(bytes, ref position) : (ulong)(header >> 4);
                SkipElements(bytes, ref position, count, [header & 0x0F], depth);
                break;
            case 11:
                ulong entries = Varint(bytes, ref position);
                if (entries > 0)
                {
                    byte types = Byte(bytes, ref position);
                    SkipElements(bytes, ref position, entries, [types >> 4, types & 0x0F], depth);
                }

                break;
            case 12:
                SkipStruct(bytes, ref position, depth + 1);
                break;
            default:
                throw new InvalidDataException($"unknown Thrift type {type}");
        }
    }

    private static void SkipElements(ReadOnlySpan<byte> bytes, ref int position, ulong count, int[] types, int depth)
    {
        CheckCount(bytes, position, count);
        for (ulong i = 0; i < count; i++)
        {
            foreach (int type in types)
            {
                SkipValue(bytes, ref position, type, depth + 1);
            }
        }
    }

    private static void Skip(ReadOnlySpan<byte> bytes, ref int position, ulong length, string what)
    {
        if (length > (ulong)(bytes.Length - position))
        {
            throw new InvalidDataException($"{what} of {length:N0} bytes in the {bytes.Length - position:N0} bytes left");
        }

        position += (int)length;
    }

    private static byte Byte(ReadOnlySpan<byte> bytes, ref int position) =>
        position < bytes.Length ? bytes[position++] : throw new InvalidDataException("the metadata ends inside a value");

    private static ulong Varint(ReadOnlySpan<byte> bytes, ref int position)
    {
        ulong value = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            byte b = Byte(bytes, ref position);
            value |= (ulong)(b & 0x7F) << shift;
            if ((b & 0x80) == 0)
            {
                return value;
            }
        }

        throw new InvalidDataException("a variable-length integer longer than 10 bytes");
    }
}
