/**
 * The part of guacamole-common-js 1.5.0 that jitgate uses (the package ships
 * no types). Names and signatures follow its JSDoc.
 */
declare module 'guacamole-common-js' {
  namespace Guacamole {
    class Status {
      constructor(code: number, message?: string);
      code: number;
      message?: string;
      isError(): boolean;
    }
    class Tunnel {
      state: number;
      uuid: string | null;
      oninstruction: ((opcode: string, args: string[]) => void) | null;
      onerror: ((status: Status) => void) | null;
      onstatechange: ((state: number) => void) | null;
      connect(data?: string): void;
      disconnect(): void;
      sendMessage(...elements: unknown[]): void;
      setState(state: number): void;
      isConnected(): boolean;
      static State: { CONNECTING: number; OPEN: number; CLOSED: number; UNSTABLE: number };
    }
    class WebSocketTunnel extends Tunnel {
      constructor(url: string);
    }
    class Layer {
      getCanvas(): HTMLCanvasElement;
    }
    class Display {
      getElement(): HTMLElement;
      getWidth(): number;
      getHeight(): number;
      getScale(): number;
      scale(scale: number): void;
      showCursor(shown: boolean): void;
      getDefaultLayer(): Layer;
      onresize: ((width: number, height: number) => void) | null;
      oncursor: ((canvas: HTMLCanvasElement, x: number, y: number) => void) | null;
    }
    class InputStream {
      index: number;
      sendAck(message: string, code: number): void;
    }
    class OutputStream {
      index: number;
    }
    class BlobReader {
      constructor(stream: InputStream, mimetype: string);
      getLength(): number;
      getBlob(): Blob;
      onprogress: ((length: number) => void) | null;
      onend: (() => void) | null;
    }
    class BlobWriter {
      constructor(stream: OutputStream);
      sendBlob(blob: Blob): void;
      sendEnd(): void;
      onack: ((status: Status) => void) | null;
      onerror: ((blob: Blob, offset: number, error: unknown) => void) | null;
      onprogress: ((blob: Blob, offset: number) => void) | null;
      oncomplete: ((blob: Blob) => void) | null;
    }
    class StringReader {
      constructor(stream: InputStream);
      ontext: ((text: string) => void) | null;
      onend: (() => void) | null;
    }
    class StringWriter {
      constructor(stream: OutputStream);
      sendText(text: string): void;
      sendEnd(): void;
    }
    class Client {
      constructor(tunnel: Tunnel);
      getDisplay(): Display;
      connect(data?: string): void;
      disconnect(): void;
      sendSize(width: number, height: number): void;
      sendKeyEvent(pressed: 0 | 1 | boolean, keysym: number): void;
      sendMouseState(state: Mouse.State, applyDisplayScale?: boolean): void;
      createClipboardStream(mimetype: string): OutputStream;
      createFileStream(mimetype: string, filename: string): OutputStream;
      onfile: ((stream: InputStream, mimetype: string, filename: string) => void) | null;
      onstatechange: ((state: number) => void) | null;
      onerror: ((status: Status) => void) | null;
      onclipboard: ((stream: InputStream, mimetype: string) => void) | null;
      static State: { IDLE: number; CONNECTING: number; WAITING: number; CONNECTED: number; DISCONNECTING: number; DISCONNECTED: number };
    }
    namespace Mouse {
      class State {
        x: number;
        y: number;
      }
      class Event {
        state: State;
      }
    }
    class Mouse {
      constructor(element: HTMLElement);
      onEach(types: string[], listener: (e: Mouse.Event) => void): void;
      setCursor(canvas: HTMLCanvasElement, x: number, y: number): boolean;
    }
    class Keyboard {
      constructor(element?: HTMLElement | Document);
      onkeydown: ((keysym: number) => boolean | void) | null;
      onkeyup: ((keysym: number) => void) | null;
      reset(): void;
    }
    class SessionRecording {
      constructor(source: Tunnel | Blob);
      connect(data?: string): void;
      disconnect(): void;
      abort(): void;
      getDisplay(): Display;
      isPlaying(): boolean;
      getPosition(): number;
      getDuration(): number;
      play(): void;
      pause(): void;
      seek(position: number, callback?: () => void): void;
      onload: (() => void) | null;
      onerror: ((message: string) => void) | null;
      onprogress: ((duration: number, parsedSize: number) => void) | null;
      onplay: (() => void) | null;
      onpause: (() => void) | null;
      onseek: ((position: number, current: number, total: number) => void) | null;
    }
  }
  export default Guacamole;
}
