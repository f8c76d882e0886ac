using System.Reflection;
using Microsoft.ML;

namespace MLNetFreqFusion.Tests.Foundation;

/// <summary>
/// The library compiles against publicized ML.NET assemblies. If a new ML.NET removes or renames one of the internal
/// members it uses, this fails with the member's name instead of a MissingMethodException at a user's Save or Load.
/// </summary>
[TestClass]
public sealed class MLNetInternalsTests
{
    [TestMethod]
    public void EveryInternalMLNetMemberTheLibraryUsesStillExists()
    {
        var library = typeof(SegmentationMask).Assembly;
        var missing = new List<string>();
        foreach (var type in library.GetTypes())
        {
            foreach (var method in type.GetMethods(BindingFlags.Instance | BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
            {
                MethodBody? body;
                try { body = method.GetMethodBody(); } catch { continue; }
                if (body is null) continue;
                foreach (var member in ReferencedMembers(method, body))
                {
                    if (member is null) missing.Add($"{type.FullName}.{method.Name} references a member that no longer resolves");
                }
            }
        }
        Assert.AreEqual(0, missing.Count, string.Join(Environment.NewLine, missing));
        // The runtime honours IgnoresAccessChecksTo only for these names.
        var attributes = library.GetCustomAttributes().Where(a => a.GetType().Name == "IgnoresAccessChecksToAttribute")
            .Select(a => (string)a.GetType().GetProperty("AssemblyName")!.GetValue(a)!).ToArray();
        CollectionAssert.AreEquivalent(new[] { "Microsoft.ML.Core", "Microsoft.ML.Data" }, attributes);
        Assert.IsNotNull(typeof(MLContext).Assembly);
    }

    static IEnumerable<MemberInfo?> ReferencedMembers(MethodBase method, MethodBody body)
    {
        var il = body.GetILAsByteArray() ?? Array.Empty<byte>();
        var module = method.Module;
        Type[]? typeArgs = method.DeclaringType?.IsGenericType == true ? method.DeclaringType.GetGenericArguments() : null;
        Type[]? methodArgs = method.IsGenericMethod ? method.GetGenericArguments() : null;
        for (int i = 0; i + 4 < il.Length; i++)
        {
            // call, callvirt, newobj, ldfld, ldflda, stfld, ldsfld, stsfld, ldftn: opcodes followed by a member token.
            byte op = il[i];
            if (op is not (0x28 or 0x6F or 0x73 or 0x7B or 0x7C or 0x7D or 0x7E or 0x80)) continue;
            int token = BitConverter.ToInt32(il, i + 1);
            int table = token >>> 24;
            if (table is not (0x06 or 0x0A or 0x04 or 0x2B)) continue;
            MemberInfo? resolved;
            try { resolved = module.ResolveMember(token, typeArgs, methodArgs); }
            catch (MissingMemberException) { resolved = null; }
            catch (ArgumentException) { continue; } // not a token: the byte was an operand, not an opcode
            catch (BadImageFormatException) { continue; }
            if (resolved is not null && resolved.Module.Assembly.GetName().Name is not ("Microsoft.ML.Core" or "Microsoft.ML.Data"))
                continue;
            yield return resolved;
        }
    }
}
