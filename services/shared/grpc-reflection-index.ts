/**
 * The lookup tables behind grpc-reflection.ts: which services to list, and which file declares a
 * given file name, symbol or extension, over the served files and all their transitive imports.
 */
import { toBinary, type DescExtension, type DescFile, type DescMessage, type DescService } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";

export class ReflectionIndex {
  /** Fully-qualified names of the services to advertise, sorted. */
  readonly serviceNames: readonly string[];
  private readonly files = new Map<string, DescFile>();
  private readonly symbols = new Map<string, DescFile>();
  private readonly messages = new Set<string>();
  /** extendee type name -> field number -> the extension. */
  private readonly extensions = new Map<string, Map<number, DescExtension>>();
  private readonly encoded = new Map<DescFile, Uint8Array>();

  /** `services` are advertised; their files and every file in `files` become resolvable. */
  constructor(services: readonly DescService[], files: readonly DescFile[] = []) {
    this.serviceNames = [...new Set(services.map((s) => s.typeName))].sort();
    for (const file of [...services.map((s) => s.file), ...files]) this.addFile(file);
  }

  /** A file by its proto path, e.g. "podium/v1/instance_service.proto". */
  fileByName(name: string): DescFile | undefined {
    return this.files.get(name);
  }

  /**
   * The file declaring a fully-qualified symbol: package-qualified service, method, message (also
   * nested), field, oneof, enum, enum value or extension. A leading "." is accepted.
   */
  fileBySymbol(symbol: string): DescFile | undefined {
    return this.symbols.get(symbol.startsWith(".") ? symbol.slice(1) : symbol);
  }

  /** The file declaring extension `number` of message `extendee`. */
  fileByExtension(extendee: string, number: number): DescFile | undefined {
    return this.extensions.get(stripDot(extendee))?.get(number)?.file;
  }

  /** Known extension numbers of a message type (sorted; may be empty); undefined if not a message. */
  extensionNumbers(typeName: string): number[] | undefined {
    const name = stripDot(typeName);
    if (!this.messages.has(name)) return undefined;
    return [...(this.extensions.get(name)?.keys() ?? [])].sort((a, b) => a - b);
  }

  /**
   * Serialized FileDescriptorProtos of `file` followed by all its transitive dependencies (each
   * once), which is what grpcurl / buf curl / grpc-js reflection clients need to build a schema.
   */
  descriptorsWithDependencies(file: DescFile): Uint8Array[] {
    const out: Uint8Array[] = [];
    const seen = new Set<DescFile>();
    const queue: DescFile[] = [file];
    for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
      if (seen.has(next)) continue;
      seen.add(next);
      out.push(this.encode(next));
      queue.push(...next.dependencies);
    }
    return out;
  }

  private encode(file: DescFile): Uint8Array {
    let bytes = this.encoded.get(file);
    if (bytes === undefined) {
      bytes = toBinary(FileDescriptorProtoSchema, file.proto);
      this.encoded.set(file, bytes);
    }
    return bytes;
  }

  private addFile(file: DescFile): void {
    const name = file.proto.name;
    if (this.files.has(name)) return;
    this.files.set(name, file);
    const prefix = file.proto.package === "" ? "" : `${file.proto.package}.`;
    for (const message of file.messages) this.addMessage(message);
    for (const e of file.enums) {
      this.addSymbol(e.typeName, file);
      for (const value of e.values) this.addSymbol(`${prefix}${value.name}`, file);
    }
    for (const extension of file.extensions) this.addExtension(extension);
    for (const service of file.services) {
      this.addSymbol(service.typeName, file);
      for (const method of service.methods) this.addSymbol(`${service.typeName}.${method.name}`, file);
    }
    for (const dependency of file.dependencies) this.addFile(dependency);
  }

  private addMessage(message: DescMessage): void {
    const file = message.file;
    this.addSymbol(message.typeName, file);
    this.messages.add(message.typeName);
    for (const field of message.fields) this.addSymbol(`${message.typeName}.${field.name}`, file);
    for (const oneof of message.oneofs) this.addSymbol(`${message.typeName}.${oneof.name}`, file);
    for (const nested of message.nestedMessages) this.addMessage(nested);
    // Map entry types (e.g. Foo.LabelsEntry) are in the descriptor but not in nestedMessages.
    for (const nested of message.proto.nestedType) this.addSymbol(`${message.typeName}.${nested.name}`, file);
    for (const e of message.nestedEnums) {
      this.addSymbol(e.typeName, file);
      // Enum values are scoped next to their enum, i.e. inside the enclosing message.
      for (const value of e.values) this.addSymbol(`${message.typeName}.${value.name}`, file);
    }
    for (const extension of message.nestedExtensions) this.addExtension(extension);
  }

  private addExtension(extension: DescExtension): void {
    this.addSymbol(extension.typeName, extension.file);
    let byNumber = this.extensions.get(extension.extendee.typeName);
    if (byNumber === undefined) this.extensions.set(extension.extendee.typeName, (byNumber = new Map()));
    byNumber.set(extension.number, extension);
  }

  private addSymbol(name: string, file: DescFile): void {
    if (!this.symbols.has(name)) this.symbols.set(name, file);
  }
}

function stripDot(name: string): string {
  return name.startsWith(".") ? name.slice(1) : name;
}
